"""A failing dbt data test is a failed lineage run: FAIL, an errorMessage, and an assertion that
did not succeed. A failure reported as COMPLETE is the bug this product exists to prevent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from support.data import shop_events
from support.lineage import LineageValidator

from floe_core.events import NodeFinished
from floe_sidecar.sinks.openlineage import translate_event

TEST_ID = "test.shop.unique_orders_order_id"


def finished_test(**changes: Any) -> NodeFinished:
    """The example run's finished ``unique`` test on orders, with ``changes``."""
    [event] = [
        e for e in shop_events() if isinstance(e, NodeFinished) and e.node.unique_id == TEST_ID
    ]
    return msgspec.structs.replace(event, **changes)


def assertion_of(run_event: dict[str, Any]) -> dict[str, Any]:
    [tested] = run_event["inputs"]
    [assertion] = tested["inputFacets"]["dataQualityAssertions"]["assertions"]
    return assertion


def test_a_failing_data_test_is_a_failed_run_with_an_unsuccessful_assertion(
    openlineage_spec_dir: Path,
) -> None:
    [run_event] = translate_event(finished_test(status="fail", failures=2, error=None))
    assert run_event["eventType"] == "FAIL"
    error = run_event["run"]["facets"]["errorMessage"]
    assert error["message"] and error["programmingLanguage"] == "sql"
    assertion = assertion_of(run_event)
    assert assertion["success"] is False
    assert assertion["actual"] == "2" and assertion["expected"] == "0"
    assert assertion["severity"] == "error"
    assert LineageValidator(openlineage_spec_dir).errors(run_event) == []


def test_the_failing_tests_own_message_is_the_error_message() -> None:
    [run_event] = translate_event(
        finished_test(status="fail", failures=2, error=None, message="Got 2 results")
    )
    assert run_event["run"]["facets"]["errorMessage"]["message"] == "Got 2 results"
    [run_event] = translate_event(
        finished_test(status="fail", failures=2, error="Got 2 results, configured to fail if != 0")
    )
    message = run_event["run"]["facets"]["errorMessage"]["message"]
    assert message == "Got 2 results, configured to fail if != 0"


@pytest.mark.parametrize(
    ("status", "event_type", "success"),
    [
        ("pass", "COMPLETE", True),
        ("fail", "FAIL", False),
        ("error", "FAIL", False),
        ("runtime error", "FAIL", False),
        ("warn", "COMPLETE", False),
    ],
)
def test_each_dbt_test_status_has_its_run_state(
    status: str, event_type: str, success: bool
) -> None:
    failures = 0 if status == "pass" else 2
    [run_event] = translate_event(finished_test(status=status, failures=failures))
    assert run_event["eventType"] == event_type
    assert ("errorMessage" in run_event["run"]["facets"]) is (event_type == "FAIL")
    assert assertion_of(run_event)["success"] is success
