"""Ids are derived, never drawn: the adapter, the sidecar and a replay in another process (another
hash seed, another day) compute the same trace, span, event and lineage run ids. A regression
here silently splits one run's trace and lineage in two, so the values are also pinned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from support.environment import TESTS_DIR

from floe_core import ids
from floe_sidecar.sinks.openlineage.run_ids import invocation_run_id, node_run_id, root_run_id

RUN = "9b2f4c1e-8a3d-4f6b-9c2e-1d5a7b3c9e0f"
CUSTOM_RUN = "manual-run-7"  # not a UUID: hashed instead
INVOCATION = "3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b"
NODE = "model.shop.orders"
STARTED = datetime(2026, 11, 26, 12, 0, 1, 250000, tzinfo=UTC)

#: Computed once with this code; a change means old spools replay under new ids.
PINNED = {
    "trace": "9b2f4c1e8a3d4f6b9c2e1d5a7b3c9e0f",
    "trace_custom": "b3097420b9ab582924d15e036547fe4b",
    "trace_nil": "00000000000000000000000000000001",  # all-zero is invalid in OTel
    "run_span": "de974b10720549b9",
    "invocation_span": "76f2f20cb1742717",
    "node_span": "7da72ecefd31e08e",
    "event": "ca2862c1-bbd5-634f-e9a8-3d21c13a4df4",
    "lineage_root": "9b2f4c1e-8a3d-4f6b-9c2e-1d5a7b3c9e0f",
    "lineage_root_custom": "46322b28-6c5a-5b17-bbd2-90a70ba8dd23",
    "lineage_invocation": "3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b",
    "lineage_invocation_custom": "15408fe4-889a-51b2-827b-9c3e4e26bbb4",
    "lineage_node": "01a217ba-16e2-7a49-a387-435b1ed63f21",
}


def derived_ids() -> dict[str, str]:
    """Every kind of derived id, for fixed inputs (the subprocesses call this too)."""
    return {
        "trace": ids.trace_id_hex(RUN),
        "trace_custom": ids.trace_id_hex(CUSTOM_RUN),
        "trace_nil": ids.trace_id_hex(str(uuid.UUID(int=0))),
        "run_span": ids.span_id_hex(ids.run_span_id(RUN)),
        "invocation_span": ids.span_id_hex(ids.invocation_span_id(RUN, INVOCATION)),
        "node_span": ids.span_id_hex(ids.node_span_id(RUN, INVOCATION, NODE)),
        "event": ids.event_id("node_finished", RUN, INVOCATION, NODE),
        "lineage_root": root_run_id(RUN),
        "lineage_root_custom": root_run_id(CUSTOM_RUN),
        "lineage_invocation": invocation_run_id(RUN, INVOCATION),
        "lineage_invocation_custom": invocation_run_id(CUSTOM_RUN, "inv-1"),
        "lineage_node": node_run_id(RUN, INVOCATION, NODE, STARTED),
    }


def in_another_process(hash_seed: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    code = "import json, test_ids_across_processes as t; print(json.dumps(t.derived_ids()))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, timeout=60, check=True
    )
    result: dict[str, str] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("hash_seed", ["0", "1", "4242"])
def test_every_id_is_the_same_in_another_process(hash_seed: str) -> None:
    assert in_another_process(hash_seed) == derived_ids()


def test_ids_keep_their_pinned_values() -> None:
    assert derived_ids() == PINNED


def test_distinct_inputs_give_distinct_ids() -> None:
    span_ids = {
        ids.run_span_id(RUN),
        ids.invocation_span_id(RUN, INVOCATION),
        ids.node_span_id(RUN, INVOCATION, NODE),
        ids.node_span_id(RUN, INVOCATION, "model.shop.customers"),
        ids.node_span_id(RUN, "another-invocation", NODE),
        ids.run_span_id(CUSTOM_RUN),
    }
    assert len(span_ids) == 6 and 0 not in span_ids
    assert ids.event_id("node_started", RUN, NODE) != ids.event_id("node_finished", RUN, NODE)
    assert ids.event_id("node_finished", RUN, "a", "bc") != ids.event_id(
        "node_finished", RUN, "ab", "c"
    )
