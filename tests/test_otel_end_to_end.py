"""SC-008 end to end: materialize the example project for real, run the sidecar, and find the same
trace and span ids in the spans (real OTLP gRPC receiver), the adapter's logs (its JSON log and
the Dagster run log) and the lineage events (the sidecar's OpenLineage output).

The pipeline runs with no sidecar at all (its socket path leads nowhere, so events go to the
spool) and its OTLP endpoint down; the receiver comes up and the sidecar runs afterwards with
``--once``, as after an outage. A model that fails at run time and one that depends on it give
error and skipped spans.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.loopback import free_port
from support.otlp_receivers import GrpcReceiver, ReceivedSpan

from floe_core import ids
from floe_core.events import Event, InvocationFinished, NodeFinished, decode_event
from floe_core.spool import list_segments
from floe_sidecar.sinks.otel.translate import to_unix_nanos

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
SIDECAR = Path(sys.executable).parent / "floe-sidecar"
TRACE_IN_MESSAGE = re.compile(r"\[trace_id=([0-9a-f]{32}) span_id=([0-9a-f]{16})\]")
BROKEN_SQL = "select order_id from {{ ref('stg_orders') }} where no_such_column = 1\n"


@dataclass
class Materialized:
    workdir: Path
    run_id: str
    success: bool
    events: list[Event]  # from the spool, as the adapter wrote them
    json_logs: list[dict[str, Any]]  # the adapter's structured log records
    run_messages: list[str]  # the Dagster run log's messages (not Dagster events)
    connects: list[Any]  # addresses the pipeline's process connected to (Python sockets)
    otlp_port: int  # the endpoint the pipeline's environment named, down during the run


# Audit hooks cannot be removed: this one records only while a materialization is running.
_RECORDING: list[list[Any]] = []


def _record_connects(event: str, args: tuple[Any, ...]) -> None:
    if _RECORDING and event == "socket.connect":
        _RECORDING[-1].append(args[1])


sys.addaudithook(_record_connects)


def _materialize(workdir: Path, otlp_endpoint: str) -> Materialized:
    import dagster

    from floe_dagster import build_definitions
    from floe_dagster.logs import configure_logging
    from floe_dagster.manifest import dbt_executable, parse_command
    from floe_dbt.compile import compile_floe

    (workdir / "dbt" / "models" / "marts" / "broken.sql").write_text(BROKEN_SQL)
    (workdir / "dbt" / "models" / "marts" / "after_broken.sql").write_text(
        "select * from {{ ref('broken') }}\n"
    )
    spool = workdir / ".floe" / "spool"
    overrides = {
        "FLOE_SPOOL_DIR": str(spool),
        "FLOE_LOG_LEVEL": "DEBUG",
        "FLOE_SOCKET": str(workdir / ".floe" / "sidecar.sock"),  # configured, nobody listening
        # The pipeline's environment names the (dead) endpoint, as a deployment would.
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    log_stream = io.StringIO()
    configure_logging(stream=log_stream)
    connects: list[Any] = []
    _RECORDING.append(connects)
    try:
        output_dir = workdir / ".floe"
        artifacts = compile_floe(workdir / "floe.yaml", output_dir=output_dir)
        subprocess.run(
            parse_command(artifacts, dbt_executable()), check=True, capture_output=True, cwd=workdir
        )
        artifacts = compile_floe(workdir / "floe.yaml", output_dir=output_dir)
        defs = build_definitions(artifacts)
        instance = dagster.DagsterInstance.ephemeral()
        assets: list[Any] = list(defs.assets or [])
        result = dagster.materialize(
            assets,
            resources=defs.resources,
            instance=instance,
            raise_on_error=False,
        )
        run_messages = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if not entry.is_dagster_event
        ]
    finally:
        _RECORDING.remove(connects)
        configure_logging(stream=sys.stderr)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    events = [
        decode_event(line)
        for segment in list_segments(spool)
        for line in segment.read_bytes().splitlines()
        if line.strip()
    ]
    json_logs = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.strip()]
    port = int(otlp_endpoint.rsplit(":", 1)[1])
    return Materialized(
        workdir, result.run_id, result.success, events, json_logs, run_messages, connects, port
    )


def _sidecar_once(run: Materialized, endpoint: str) -> subprocess.CompletedProcess[bytes]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("FLOE_", "OTEL_", "OPENLINEAGE"))
    }
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    floe_dir = run.workdir / ".floe"
    return subprocess.run(
        [
            str(SIDECAR),
            "--spool", str(floe_dir / "spool"),
            "--artifacts", str(floe_dir / "compiled_artifacts.json"),
            "--output-dir", str(floe_dir),  # lineage: the embedded default, an NDJSON file
            "--once", "--timeout", "60",
            "--no-default-sinks",
            "--sink", "python:floe_sidecar.sinks.otel.sink:build_trace_sink",
            "--sink", "python:floe_sidecar.sinks.openlineage.sink:build_openlineage_sink",
        ],
        env=env, capture_output=True, timeout=180, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Materialized, Any]]:
    import shutil

    workdir = tmp_path_factory.mktemp("otel-e2e") / "shop"
    shutil.copytree(
        REPO_ROOT / "examples" / "shop",
        workdir,
        ignore=shutil.ignore_patterns(".floe", "target", "logs", "*.duckdb*", "dbt_packages"),
    )
    # The OTLP receiver is down for the whole pipeline run and comes up afterwards.
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    run = _materialize(workdir, endpoint)
    with GrpcReceiver(port) as receiver:
        result = _sidecar_once(run, endpoint)
        assert result.returncode == 0, result.stderr.decode()[-4000:]
        yield run, receiver.spans()


def _lineage(run: Materialized) -> list[dict[str, Any]]:
    path = run.workdir / ".floe" / "lineage" / "openlineage.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_one_trace_one_span_per_executed_node_at_dbts_times(
    traced: tuple[Materialized, list[ReceivedSpan]],
) -> None:
    run, spans = traced
    assert not run.success  # the broken model failed its step
    trace_hex = uuid.UUID(run.run_id).hex
    assert {s.trace_id for s in spans} == {trace_hex}
    assert len({s.span_id for s in spans}) == len(spans)  # nothing twice

    finished = {e.node.unique_id: e for e in run.events if isinstance(e, NodeFinished)}
    unfinished = {
        u.node.unique_id for e in run.events if isinstance(e, InvocationFinished)
        for u in e.unfinished
    }  # fmt: skip
    assert len(finished) >= 25  # seeds, models, snapshot and tests of the example
    nodes = {s.attributes["dbt.unique_id"]: s for s in spans if "dbt.unique_id" in s.attributes}
    assert set(nodes) == set(finished) | unfinished  # 100% of the executed nodes
    invocations = [s for s in spans if s.span.name == "dbt build"]
    roots = [s for s in spans if s.parent_span_id is None]
    assert len(invocations) == 1 and len(roots) == 1
    assert roots[0].span_id == ids.span_id_hex(ids.run_span_id(run.run_id))
    assert invocations[0].parent_span_id == roots[0].span_id
    assert len(spans) == len(nodes) + 2
    for unique_id, event in finished.items():
        span = nodes[unique_id].span
        assert span.parent_span_id.hex() == invocations[0].span_id
        assert abs(span.end_time_unix_nano - to_unix_nanos(event.finished_at)) < 1_000_000
        if event.started_at is not None:
            assert abs(span.start_time_unix_nano - to_unix_nanos(event.started_at)) < 1_000_000

    broken = nodes["model.shop.broken"]
    assert broken.span.status.code == broken.span.status.STATUS_CODE_ERROR
    assert broken.attributes["error.type"] == "dbt_node_error"
    assert "no_such_column" in broken.span.events[0].attributes[1].value.string_value
    assert nodes["model.shop.after_broken"].attributes["cicd.pipeline.task.run.result"] == "skip"
    customers = nodes["model.shop.customers"]
    assert customers.attributes["floe.asset_key"] == "customers"
    assert customers.attributes["dbt.materialization"] == "table"
    assert customers.attributes["db.system"] == "duckdb"
    assert customers.attributes["cicd.pipeline.run.id"] == run.run_id
    assert customers.resource["tenant"] == "example"
    assert customers.resource["deployment.environment.name"] == "dev"
    assert roots[0].resource["tenant"] == "example"


def test_the_pipeline_never_touches_the_endpoint(
    traced: tuple[Materialized, list[ReceivedSpan]],
) -> None:
    """Its wall time cannot depend on the endpoint: the pipeline never connects to it (it only
    appends to the spool), so an outage costs it nothing."""
    run, spans = traced
    # The recorder sees the pipeline's connections: the adapter's try at the sidecar's socket.
    assert str(run.workdir / ".floe" / "sidecar.sock") in run.connects
    assert not [a for a in run.connects if isinstance(a, tuple) and a[1:2] == (run.otlp_port,)]
    assert spans  # and yet every span arrived, once the receiver was up


def test_log_lines_name_the_spans(traced: tuple[Materialized, list[ReceivedSpan]]) -> None:
    run, spans = traced
    trace_hex = uuid.UUID(run.run_id).hex
    span_ids = {s.span_id for s in spans}
    node_span = {
        s.attributes["dbt.unique_id"]: s.span_id for s in spans if "dbt.unique_id" in s.attributes
    }

    # The adapter's JSON log: every record with ids names this trace and one of its spans, and
    # the per-node records name exactly that node's span.
    traced_logs = [r for r in run.json_logs if r.get("trace_id")]
    assert traced_logs
    assert {r["trace_id"] for r in traced_logs} == {trace_hex}
    assert {r["span_id"] for r in traced_logs} <= span_ids
    per_node = [r for r in traced_logs if r.get("unique_id")]
    assert {r["unique_id"] for r in per_node} >= set(node_span) - {"model.shop.after_broken"}
    for record in per_node:
        assert record["span_id"] == node_span[record["unique_id"]]

    # The Dagster run log: messages carry "[trace_id=... span_id=...]", the failed node's its own.
    named = [m for m in run.run_messages if TRACE_IN_MESSAGE.search(m)]
    assert named
    for message in named:
        match = TRACE_IN_MESSAGE.search(message)
        assert match is not None
        assert match.group(1) == trace_hex and match.group(2) in span_ids
    # dbt's own JSON log: every line carries the trace id and the run's span id.
    root = next(s for s in spans if s.parent_span_id is None)
    [dbt_log] = (run.workdir / "dbt" / "target").glob(f"*-{run.run_id[:7]}-*/dbt.log")
    extras = [json.loads(line)["info"]["extra"] for line in dbt_log.read_text().splitlines()]
    assert len(extras) > 100
    assert {(e["FLOE_TRACE_ID"], e["FLOE_SPAN_ID"]) for e in extras} == {(trace_hex, root.span_id)}

    [error] = [m for m in named if "model.shop.broken" in m and "error" in m]
    assert TRACE_IN_MESSAGE.search(error).group(2) == node_span["model.shop.broken"]  # type: ignore[union-attr]


def test_lineage_events_carry_the_span_ids(
    traced: tuple[Materialized, list[ReceivedSpan]],
) -> None:
    run, spans = traced
    trace_hex = uuid.UUID(run.run_id).hex
    pairs = {(s.span_id, s.parent_span_id) for s in spans}
    lineage = _lineage(run)
    assert len(lineage) >= 50
    facets = [e["run"]["facets"]["floe_trace"] for e in lineage]
    assert {f["traceId"] for f in facets} == {trace_hex}
    assert {(f["spanId"], f.get("parentSpanId")) for f in facets} <= pairs
    # Every executed node's lineage run is the node's span.
    executed = {
        ids.span_id_hex(ids.node_span_id(run.run_id, e.invocation.invocation_id, e.node.unique_id))
        for e in run.events
        if isinstance(e, NodeFinished) and e.started_at is not None
    }
    assert executed <= {f["spanId"] for f in facets}
