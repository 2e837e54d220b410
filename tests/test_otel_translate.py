"""The pure event -> span translation: tree, ids, exact times, statuses and attributes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from support.data import (
    INVOCATION_END,
    RUN_END,
    STEPS,
    UNFINISHED,
    at,
    executed_node_ids,
    run_events,
    run_log_lines,
)
from support.data import (
    TRACE_INVOCATION_ID as INVOCATION_ID,
)
from support.data import (
    TRACE_JOB as JOB,
)
from support.data import (
    TRACE_RUN_ID as RUN_ID,
)
from support.data import trace_invocation as make_invocation

from floe_core import ids
from floe_core.events import (
    Connection,
    DagsterRun,
    InvocationFinished,
    NodeFinished,
    Relation,
    RunFinished,
)
from floe_sidecar.sinks.otel.sink import to_readable_span
from floe_sidecar.sinks.otel.translate import (
    AttributeValue,
    SpanEvent,
    SpanRecord,
    SpanTranslator,
    db_system,
    db_system_name,
    to_unix_nanos,
)

BASE = {"service.name": "floe", "deployment.environment.name": "dev", "region": "eu"}


def _spans() -> list[SpanRecord]:
    translator = SpanTranslator(BASE)
    return [span for event in run_events() for span in translator.translate(event)]


def _by_name(spans: list[SpanRecord]) -> dict[str, SpanRecord]:
    return {span.name: span for span in spans}


def test_one_span_per_executed_node_plus_invocation_and_run_in_one_trace() -> None:
    spans = _spans()
    node_spans = [s for s in spans if "dbt.unique_id" in s.attributes]
    assert sorted(s.attributes["dbt.unique_id"] for s in node_spans) == sorted(executed_node_ids())
    assert len(spans) == len(executed_node_ids()) + 2
    assert {s.trace_id for s in spans} == {uuid.UUID(RUN_ID).hex}
    assert len({s.span_id for s in spans}) == len(spans)


def test_parent_links_run_invocation_node() -> None:
    spans = _by_name(_spans())
    run, invocation = spans[f"RUN {JOB}"], spans["dbt build"]
    assert run.parent_span_id is None and run.kind == "server"
    assert run.span_id == ids.span_id_hex(ids.run_span_id(RUN_ID))
    assert invocation.parent_span_id == run.span_id
    assert invocation.span_id == ids.span_id_hex(ids.invocation_span_id(RUN_ID, INVOCATION_ID))
    for unique_id in executed_node_ids():
        span = spans[unique_id]
        assert span.parent_span_id == invocation.span_id
        assert span.span_id == ids.span_id_hex(ids.node_span_id(RUN_ID, INVOCATION_ID, unique_id))


def test_node_times_are_dbts_own_to_the_microsecond() -> None:
    spans = _by_name(_spans())
    for step in STEPS:
        span = spans[step.unique_id]
        assert span.end_ns == to_unix_nanos(at(step.end))
        start = step.end if step.start is None else step.start
        assert span.start_ns == to_unix_nanos(at(start))
    # 0.731207 s after T0: microseconds survive (no float rounding anywhere).
    stg = spans["model.shop.stg_orders"]
    assert stg.end_ns % 1_000_000_000 == (123_456 + 731_207) * 1_000 % 1_000_000_000
    run = spans[f"RUN {JOB}"]
    assert (run.start_ns, run.end_ns) == (to_unix_nanos(at(-2)), to_unix_nanos(at(2.5)))


def test_statuses_results_and_exception_events() -> None:
    spans = _by_name(_spans())
    ok = spans["model.shop.orders"]
    assert ok.status == "ok" and ok.events == () and "error.type" not in ok.attributes
    assert ok.attributes["cicd.pipeline.task.run.result"] == "success"

    broken = spans["model.shop.broken"]
    assert broken.status == "error"
    assert broken.status_message == "Binder Error: column x not found"
    assert broken.attributes["error.type"] == "dbt_node_error"
    assert broken.attributes["cicd.pipeline.task.run.result"] == "error"
    (exception,) = broken.events
    assert exception.name == "exception"
    assert exception.attributes["exception.message"] == "Binder Error: column x not found\nLINE 1"
    assert exception.time_ns == broken.end_ns

    failed_test = spans["test.shop.accepted_orders_status"]
    assert failed_test.status == "error"
    assert failed_test.attributes["cicd.pipeline.task.run.result"] == "failure"
    assert failed_test.attributes["error.type"] == "dbt_test_failure"
    assert failed_test.attributes["dbt.failures"] == 2
    assert failed_test.attributes["cicd.pipeline.task.type"] == "test"

    passed_test = spans["test.shop.unique_orders_order_id"]
    assert passed_test.status == "ok" and passed_test.attributes["dbt.status"] == "pass"

    skipped = spans["model.shop.after_broken"]
    assert skipped.status == "unset" and skipped.start_ns == skipped.end_ns
    assert skipped.attributes["cicd.pipeline.task.run.result"] == "skip"


def test_unfinished_node_is_closed_with_error_at_the_invocation_end() -> None:
    spans = _by_name(_spans())
    slow_id, slow_start = UNFINISHED
    slow = spans[slow_id]
    invocation = spans["dbt build"]
    assert slow.start_ns == to_unix_nanos(at(slow_start))
    assert slow.end_ns == invocation.end_ns
    assert slow.status == "error"
    assert slow.attributes["error.type"] == "dbt_node_aborted"
    assert "dbt was killed" in slow.events[0].attributes["exception.message"]  # type: ignore[operator]
    assert invocation.status == "error" and invocation.attributes["floe.unfinished_nodes"] == 1


def test_node_attributes() -> None:
    span = _by_name(_spans())["model.shop.orders"]
    assert span.attributes == {
        "cicd.pipeline.name": JOB,
        "cicd.pipeline.run.id": RUN_ID,
        "cicd.pipeline.task.name": "model.shop.orders",
        "cicd.pipeline.task.run.id": f"{INVOCATION_ID}/model.shop.orders",
        "cicd.pipeline.task.type": "build",
        "cicd.pipeline.task.run.result": "success",
        "dbt.invocation_id": INVOCATION_ID,
        "dbt.project_name": "shop",
        "floe.compute_target": "duckdb",
        "db.system": "duckdb",
        "db.system.name": "duckdb",
        "dbt.unique_id": "model.shop.orders",
        "dbt.node_name": "orders",
        "dbt.resource_type": "model",
        "dbt.package_name": "shop",
        "dbt.materialization": "table",
        "dbt.relation": "shop.main.orders",
        "db.namespace": "shop",
        "floe.asset_key": "shop/orders",
        "dbt.tags": ("nightly",),
        "code.file.path": "models/orders.sql",
        "dbt.status": "success",
        "dbt.rows_affected": 6,
        "dbt.message": "OK",
    }


def test_run_and_invocation_attributes_follow_the_cicd_conventions() -> None:
    spans = _by_name(_spans())
    run = spans[f"RUN {JOB}"]
    assert run.attributes == {
        "cicd.pipeline.name": JOB,
        "cicd.pipeline.run.id": RUN_ID,
        "cicd.pipeline.action.name": "RUN",
        "cicd.pipeline.result": "failure",
        "error.type": "dagster_run_failure",
    }
    assert run.events[0].attributes["exception.message"] == "1 step failed"
    invocation = spans["dbt build"]
    assert invocation.attributes["cicd.pipeline.task.run.id"] == INVOCATION_ID
    assert invocation.attributes["dbt.command"] == "build"
    assert invocation.attributes["dbt.version"] == "1.11.2"


def test_the_command_line_never_reaches_a_span() -> None:
    # `--vars` may carry secrets: only the subcommand is kept.
    encoded = msgspec.json.encode(_spans())
    assert b"hunter2" not in encoded and b"--vars" not in encoded


def test_resource_attributes_come_from_the_events_over_the_base() -> None:
    for span in _spans():
        assert span.resource == {
            "service.name": "floe",
            "region": "eu",
            "tenant": "acme",
            "team": "data",
            "deployment.environment.name": "staging",
        }


def test_run_finished_without_attributes_keeps_the_base_resource() -> None:
    event = RunFinished(
        event_id="e",
        emitted_at=at(3),
        run=DagsterRun(run_id=RUN_ID, job_name=JOB),  # no start time known
        finished_at=at(3),
        success=True,
    )
    (span,) = SpanTranslator(BASE).translate(event)
    assert span.resource == BASE
    assert span.start_ns == span.end_ns == to_unix_nanos(at(3))
    assert span.status == "ok" and span.attributes["cicd.pipeline.result"] == "success"


def test_translation_is_deterministic_and_starts_write_nothing() -> None:
    assert _spans() == _spans()
    translator = SpanTranslator(BASE)
    events = run_events()
    assert translator.translate(events[0]) == ()  # invocation_started
    assert translator.translate(events[1]) == ()  # node_started


def test_unknown_status_with_an_error_is_never_ok() -> None:
    finished = next(e for e in run_events() if isinstance(e, NodeFinished))
    (span,) = SpanTranslator(BASE).translate(
        msgspec.structs.replace(finished, status="exploded", error="kaboom")
    )
    assert span.status == "error" and span.attributes["dbt.status"] == "exploded"


@pytest.mark.parametrize(
    ("target", "adapter", "system", "system_name"),
    [
        ("duckdb", "duckdb", "duckdb", "duckdb"),
        ("postgres", "postgres", "postgresql", "postgresql"),
        ("snowflake", "snowflake", "snowflake", "snowflake"),
        ("bigquery", "bigquery", "bigquery", "gcp.bigquery"),
        ("redshift", "redshift", "redshift", "aws.redshift"),
        ("databricks", "databricks", "databricks", "databricks"),
        ("spark", "spark", "spark", "spark"),
        ("oracle", "oracle", "other_sql", "other_sql"),
    ],
)
def test_db_system_per_target(target: str, adapter: str, system: str, system_name: str) -> None:
    connection = Connection(target=target, adapter_type=adapter)
    assert (db_system(connection), db_system_name(connection)) == (system, system_name)


def test_server_attributes_from_the_connection() -> None:
    translator = SpanTranslator(BASE)
    event = next(e for e in run_events() if isinstance(e, NodeFinished))
    event = msgspec.structs.replace(event, invocation=make_invocation(target="postgres"))
    (span,) = translator.translate(event)
    assert span.attributes["db.system"] == "postgresql"
    assert span.attributes["server.address"] == "db.internal"
    assert span.attributes["server.port"] == 5432


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
def test_unix_nanos_are_exact(moment: datetime) -> None:
    nanos = to_unix_nanos(moment)
    assert nanos % 1_000 == 0
    back = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=nanos // 1_000)
    assert back == moment.replace(tzinfo=UTC)  # naive means UTC, as in dbt's logs


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (("build", "--select", "orders"), "dbt build"),
        (("--no-use-colors", "--log-format", "json", "run", "--vars", "{k: v}"), "dbt run"),
        (("/venv/bin/dbt", "seed"), "dbt seed"),
        (("--version",), "dbt"),
        ((), "dbt"),
    ],
)
def test_invocation_span_is_named_after_the_subcommand(command: tuple[str, ...], name: str) -> None:
    finished = next(e for e in run_events() if isinstance(e, InvocationFinished))
    event = msgspec.structs.replace(
        finished, invocation=msgspec.structs.replace(finished.invocation, command=command)
    )
    span = SpanTranslator(BASE).translate(event)[0]
    assert span.name == name
    assert "{k: v}" not in str(span.attributes)


_text = st.text(min_size=1, max_size=40)
_moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))


@given(
    status=st.one_of(st.sampled_from(["success", "error", "fail", "warn", "skipped"]), _text),
    started=st.one_of(st.none(), _moments),
    finished=_moments,
    error=st.one_of(st.none(), st.text(max_size=200)),
    rows=st.one_of(st.none(), st.integers(min_value=0, max_value=2**62)),
    asset_key=st.lists(_text, max_size=3).map(tuple),
    tags=st.lists(_text, max_size=3).map(tuple),
)
def test_any_node_finished_becomes_one_encodable_span(
    status: str,
    started: datetime | None,
    finished: datetime,
    error: str | None,
    rows: int | None,
    asset_key: tuple[str, ...],
    tags: tuple[str, ...],
) -> None:
    template = next(e for e in run_events() if isinstance(e, NodeFinished))
    event = msgspec.structs.replace(
        template,
        status=status,
        started_at=started,
        finished_at=finished,
        error=error,
        rows_affected=rows,
        node=msgspec.structs.replace(template.node, asset_key=asset_key, tags=tags),
    )
    (span,) = SpanTranslator(BASE).translate(event)
    assert span.start_ns <= span.end_ns
    assert len(span.trace_id) == 32 and len(span.span_id) == 16
    if error and span.status == "error":
        assert span.events[0].attributes["exception.message"] == error
    # What the exporter does with it: the OTLP encoding accepts every attribute.
    request = encode_spans([to_readable_span(span, Resource(span.resource))])
    assert request.resource_spans[0].scope_spans[0].spans[0].name == span.name


# -- whole spans, field by field (the mutation run showed single fields going unchecked) ----------

_RESOURCE = {
    "service.name": "floe",
    "region": "eu",
    "tenant": "acme",
    "team": "data",
    "deployment.environment.name": "staging",
}
_RUN_SPAN_ID = ids.span_id_hex(ids.run_span_id(RUN_ID))
_INVOCATION_SPAN_ID = ids.span_id_hex(ids.invocation_span_id(RUN_ID, INVOCATION_ID))


def _run_finished(success: bool, error: str | None) -> RunFinished:
    return RunFinished(
        event_id="e",
        emitted_at=at(3),
        run=DagsterRun(run_id=RUN_ID, job_name=JOB, started_at=at(-2)),
        finished_at=at(3),
        success=success,
        error=error,
    )


def test_a_failed_run_span_is_an_error_carrying_the_runs_error() -> None:
    span = _by_name(_spans())[f"RUN {JOB}"]
    end = to_unix_nanos(at(RUN_END))
    assert span == SpanRecord(
        name=f"RUN {JOB}",
        trace_id=uuid.UUID(RUN_ID).hex,
        span_id=_RUN_SPAN_ID,
        parent_span_id=None,
        kind="server",
        start_ns=to_unix_nanos(at(-2)),
        end_ns=end,
        status="error",
        status_message="1 step failed",
        attributes={
            "cicd.pipeline.name": JOB,
            "cicd.pipeline.run.id": RUN_ID,
            "cicd.pipeline.action.name": "RUN",
            "cicd.pipeline.result": "failure",
            "error.type": "dagster_run_failure",
        },
        events=(
            SpanEvent(
                name="exception",
                time_ns=end,
                attributes={
                    "exception.type": "dagster_run_failure",
                    "exception.message": "1 step failed",
                },
            ),
        ),
        resource=_RESOURCE,
    )


def test_a_run_that_failed_without_a_message_still_says_it_failed() -> None:
    (span,) = SpanTranslator(BASE).translate(_run_finished(success=False, error=None))
    assert span.status == "error" and span.status_message == "failed"
    assert span.events == ()
    assert span.attributes["error.type"] == "dagster_run_failure"


def test_a_successful_run_span_has_no_error_anywhere() -> None:
    (span,) = SpanTranslator(BASE).translate(_run_finished(success=True, error="ignored"))
    assert span.status == "ok" and span.status_message is None and span.events == ()
    assert span.attributes == {
        "cicd.pipeline.name": JOB,
        "cicd.pipeline.run.id": RUN_ID,
        "cicd.pipeline.action.name": "RUN",
        "cicd.pipeline.result": "success",
    }
    assert (span.start_ns, span.end_ns) == (to_unix_nanos(at(-2)), to_unix_nanos(at(3)))


def test_a_run_span_never_ends_before_it_starts() -> None:
    event = msgspec.structs.replace(_run_finished(success=True, error=None), finished_at=at(-3))
    (span,) = SpanTranslator(BASE).translate(event)
    assert span.start_ns == span.end_ns == to_unix_nanos(at(-2))


def test_the_unfinished_node_span_whole() -> None:
    slow_id, slow_start = UNFINISHED
    span = _by_name(_spans())[slow_id]
    end = to_unix_nanos(at(INVOCATION_END))
    message = "the dbt invocation ended before this node finished: dbt was killed"
    assert span == SpanRecord(
        name=slow_id,
        trace_id=uuid.UUID(RUN_ID).hex,
        span_id=ids.span_id_hex(ids.node_span_id(RUN_ID, INVOCATION_ID, slow_id)),
        parent_span_id=_INVOCATION_SPAN_ID,
        kind="internal",
        start_ns=to_unix_nanos(at(slow_start)),
        end_ns=end,
        status="error",
        status_message=message,
        attributes={
            "cicd.pipeline.name": JOB,
            "cicd.pipeline.run.id": RUN_ID,
            "cicd.pipeline.task.name": slow_id,
            "cicd.pipeline.task.run.id": f"{INVOCATION_ID}/{slow_id}",
            "cicd.pipeline.task.type": "build",
            "cicd.pipeline.task.run.result": "error",
            "dbt.invocation_id": INVOCATION_ID,
            "dbt.project_name": "shop",
            "floe.compute_target": "duckdb",
            "db.system": "duckdb",
            "db.system.name": "duckdb",
            "dbt.unique_id": slow_id,
            "dbt.node_name": "slow",
            "dbt.resource_type": "model",
            "dbt.package_name": "shop",
            "dbt.materialization": "table",
            "dbt.relation": "shop.main.slow",
            "db.namespace": "shop",
            "floe.asset_key": "shop/slow",
            "dbt.tags": ("nightly",),
            "code.file.path": "models/slow.sql",
            "error.type": "dbt_node_aborted",
        },
        events=(
            SpanEvent(
                name="exception",
                time_ns=end,
                attributes={"exception.type": "dbt_node_aborted", "exception.message": message},
            ),
        ),
        resource=_RESOURCE,
    )


def test_an_unfinished_node_of_an_invocation_without_an_error_says_only_that() -> None:
    finished = next(e for e in run_events() if isinstance(e, InvocationFinished))
    event = msgspec.structs.replace(finished, error=None, finished_at=at(0.5))
    _invocation, aborted = SpanTranslator(BASE).translate(event)
    message = "the dbt invocation ended before this node finished"
    assert aborted.status_message == message
    assert aborted.events[0].attributes["exception.message"] == message
    # It started after the invocation's end (clocks): zero length, never negative.
    assert aborted.start_ns == aborted.end_ns == to_unix_nanos(at(UNFINISHED[1]))


def _invocation_finished(**changes: object) -> InvocationFinished:
    finished = next(e for e in run_events() if isinstance(e, InvocationFinished))
    return msgspec.structs.replace(finished, **changes)


def test_a_failed_invocation_span_whole() -> None:
    span = _by_name(_spans())["dbt build"]
    end = to_unix_nanos(at(INVOCATION_END))
    assert span == SpanRecord(
        name="dbt build",
        trace_id=uuid.UUID(RUN_ID).hex,
        span_id=_INVOCATION_SPAN_ID,
        parent_span_id=_RUN_SPAN_ID,
        kind="internal",
        start_ns=to_unix_nanos(at(0)),
        end_ns=end,
        status="error",
        status_message="dbt was killed",
        attributes={
            "cicd.pipeline.name": JOB,
            "cicd.pipeline.run.id": RUN_ID,
            "dbt.invocation_id": INVOCATION_ID,
            "dbt.project_name": "shop",
            "floe.compute_target": "duckdb",
            "db.system": "duckdb",
            "db.system.name": "duckdb",
            "cicd.pipeline.task.name": "dbt build",
            "cicd.pipeline.task.run.id": INVOCATION_ID,
            "cicd.pipeline.task.type": "build",
            "cicd.pipeline.task.run.result": "error",
            "dbt.command": "build",
            "dbt.version": "1.11.2",
            "floe.unfinished_nodes": 1,
            "error.type": "dbt_invocation_error",
        },
        events=(
            SpanEvent(
                name="exception",
                time_ns=end,
                attributes={
                    "exception.type": "dbt_invocation_error",
                    "exception.message": "dbt was killed",
                },
            ),
        ),
        resource=_RESOURCE,
    )


def test_a_successful_invocation_span_has_no_error_anywhere() -> None:
    event = _invocation_finished(success=True, error=None, unfinished=())
    (span,) = SpanTranslator(BASE).translate(event)
    assert span.status == "ok" and span.status_message is None and span.events == ()
    assert span.attributes["cicd.pipeline.task.run.result"] == "success"
    assert "error.type" not in span.attributes
    assert "floe.unfinished_nodes" not in span.attributes


def test_an_invocation_that_failed_without_a_message_still_says_it_failed() -> None:
    (span,) = SpanTranslator(BASE).translate(_invocation_finished(error=None, unfinished=()))
    assert span.status == "error" and span.status_message == "failed" and span.events == ()
    assert span.attributes["error.type"] == "dbt_invocation_error"


def test_an_invocation_without_a_subcommand_or_version_names_neither() -> None:
    event = _invocation_finished(
        invocation=msgspec.structs.replace(
            _invocation_finished().invocation, command=("--version",), dbt_version=None
        ),
        unfinished=(),
    )
    (span,) = SpanTranslator(BASE).translate(event)
    assert span.name == "dbt" and span.attributes["cicd.pipeline.task.name"] == "dbt"
    assert "dbt.command" not in span.attributes and "dbt.version" not in span.attributes


def test_an_invocation_span_never_ends_before_it_starts() -> None:
    (span,) = SpanTranslator(BASE).translate(
        _invocation_finished(finished_at=at(-1), unfinished=())
    )
    assert span.start_ns == span.end_ns == to_unix_nanos(at(0))


def _node_attributes_of(unique_id: str) -> dict[str, AttributeValue]:
    """What every span of that trace node carries, whatever its outcome."""
    _kind, _package, name = unique_id.split(".", 2)
    return {
        "cicd.pipeline.name": JOB,
        "cicd.pipeline.run.id": RUN_ID,
        "cicd.pipeline.task.name": unique_id,
        "cicd.pipeline.task.run.id": f"{INVOCATION_ID}/{unique_id}",
        "dbt.invocation_id": INVOCATION_ID,
        "dbt.project_name": "shop",
        "floe.compute_target": "duckdb",
        "db.system": "duckdb",
        "db.system.name": "duckdb",
        "dbt.unique_id": unique_id,
        "dbt.node_name": name,
        "dbt.package_name": "shop",
        "dbt.relation": f"shop.main.{name}",
        "db.namespace": "shop",
        "dbt.tags": ("nightly",),
    }


def test_a_broken_model_span_whole() -> None:
    span = _by_name(_spans())["model.shop.broken"]
    end = to_unix_nanos(at(0.9))
    error = "Binder Error: column x not found\nLINE 1"
    assert span == SpanRecord(
        name="model.shop.broken",
        trace_id=uuid.UUID(RUN_ID).hex,
        span_id=ids.span_id_hex(ids.node_span_id(RUN_ID, INVOCATION_ID, "model.shop.broken")),
        parent_span_id=_INVOCATION_SPAN_ID,
        kind="internal",
        start_ns=to_unix_nanos(at(0.8)),
        end_ns=end,
        status="error",
        status_message="Binder Error: column x not found",
        attributes={
            **_node_attributes_of("model.shop.broken"),
            "cicd.pipeline.task.type": "build",
            "dbt.resource_type": "model",
            "dbt.materialization": "table",
            "floe.asset_key": "shop/broken",
            "code.file.path": "models/broken.sql",
            "cicd.pipeline.task.run.result": "error",
            "dbt.status": "error",
            "error.type": "dbt_node_error",
            "dbt.message": error,
        },
        events=(
            SpanEvent(
                name="exception",
                time_ns=end,
                attributes={"exception.type": "dbt_node_error", "exception.message": error},
            ),
        ),
        resource=_RESOURCE,
    )


def test_a_failed_data_test_span_whole() -> None:
    unique_id = "test.shop.accepted_orders_status"
    span = _by_name(_spans())[unique_id]
    end = to_unix_nanos(at(1.4))
    assert span == SpanRecord(
        name=unique_id,
        trace_id=uuid.UUID(RUN_ID).hex,
        span_id=ids.span_id_hex(ids.node_span_id(RUN_ID, INVOCATION_ID, unique_id)),
        parent_span_id=_INVOCATION_SPAN_ID,
        kind="internal",
        start_ns=to_unix_nanos(at(1.31)),
        end_ns=end,
        status="error",
        status_message="Got 2 results",
        attributes={
            **_node_attributes_of(unique_id),
            "cicd.pipeline.task.type": "test",
            "dbt.resource_type": "test",
            "code.file.path": "tests/accepted_orders_status.sql",
            "dbt.test.name": "accepted",
            "dbt.test.attached_unique_id": "model.shop.orders",
            "dbt.test.column_name": "order_id",
            "cicd.pipeline.task.run.result": "failure",
            "dbt.status": "fail",
            "error.type": "dbt_test_failure",
            "dbt.failures": 2,
            "dbt.message": "Got 2 results",
        },
        events=(
            SpanEvent(
                name="exception",
                time_ns=end,
                attributes={
                    "exception.type": "dbt_test_failure",
                    "exception.message": "Got 2 results",
                },
            ),
        ),
        resource=_RESOURCE,
    )


def test_a_skipped_node_span_is_neither_ok_nor_an_error() -> None:
    span = _by_name(_spans())["model.shop.after_broken"]
    assert span.status == "unset" and span.status_message is None and span.events == ()
    assert "error.type" not in span.attributes and span.attributes["dbt.status"] == "skipped"
    assert span.start_ns == span.end_ns == to_unix_nanos(at(0.95))


def _finished_node(unique_id: str, **changes: object) -> NodeFinished:
    finished = next(
        e for e in run_events() if isinstance(e, NodeFinished) and e.node.unique_id == unique_id
    )
    return msgspec.structs.replace(finished, **changes)


def test_an_erroring_node_without_an_error_reports_its_message() -> None:
    event = _finished_node("model.shop.broken", error=None, message="Runtime Error in model")
    (span,) = SpanTranslator(BASE).translate(event)
    assert span.status == "error" and span.status_message == "Runtime Error in model"
    (exception,) = span.events
    assert exception.attributes["exception.message"] == "Runtime Error in model"
    # Without a message either, the span still fails, with nothing made up.
    (bare,) = SpanTranslator(BASE).translate(
        _finished_node("model.shop.broken", error=None, message=None)
    )
    assert bare.status == "error" and bare.status_message is None and bare.events == ()
    assert (
        bare.attributes["error.type"] == "dbt_node_error" and "dbt.message" not in bare.attributes
    )


def test_a_successful_node_with_a_message_has_no_status_message() -> None:
    (span,) = SpanTranslator(BASE).translate(_finished_node("model.shop.orders", message="OK"))
    assert span.status == "ok" and span.status_message is None and span.events == ()


def test_a_node_span_never_ends_before_it_starts() -> None:
    (span,) = SpanTranslator(BASE).translate(
        _finished_node("model.shop.orders", finished_at=at(0.7))
    )
    assert span.start_ns == span.end_ns == to_unix_nanos(at(0.8))


def test_a_status_message_is_the_errors_first_line_cut_at_256_characters() -> None:
    (span,) = SpanTranslator(BASE).translate(
        _finished_node("model.shop.broken", error="\n  " + "x" * 300 + "\nsecond line")
    )
    assert span.status_message == "x" * 256
    (blank,) = SpanTranslator(BASE).translate(
        _finished_node("model.shop.broken", error=" \n ", message=None)
    )
    assert blank.status_message is None


def test_a_node_without_optional_fields_carries_none_of_their_attributes() -> None:
    template = _finished_node("model.shop.orders", rows_affected=None, message=None)
    bare = msgspec.structs.replace(
        template,
        node=msgspec.structs.replace(
            template.node,
            package_name=None,
            materialized=None,
            relation=None,
            asset_key=(),
            tags=(),
            original_file_path=None,
        ),
    )
    (span,) = SpanTranslator(BASE).translate(bare)
    assert span.attributes == {
        **{
            k: v
            for k, v in _node_attributes_of("model.shop.orders").items()
            if k not in ("dbt.package_name", "dbt.relation", "db.namespace", "dbt.tags")
        },
        "cicd.pipeline.task.type": "build",
        "dbt.resource_type": "model",
        "cicd.pipeline.task.run.result": "success",
        "dbt.status": "success",
    }


def test_a_relation_without_a_database_has_no_db_namespace() -> None:
    template = _finished_node("model.shop.orders")
    event = msgspec.structs.replace(
        template,
        node=msgspec.structs.replace(
            template.node, relation=Relation(database=None, schema="main", identifier="orders")
        ),
    )
    (span,) = SpanTranslator(BASE).translate(event)
    assert span.attributes["dbt.relation"] == "main.orders"
    assert "db.namespace" not in span.attributes


def test_a_test_on_no_model_or_column_names_neither() -> None:
    template = _finished_node("test.shop.unique_orders_order_id")
    assert template.node.test is not None
    event = msgspec.structs.replace(
        template,
        node=msgspec.structs.replace(
            template.node,
            test=msgspec.structs.replace(
                template.node.test, attached_unique_id=None, column_name=None
            ),
        ),
    )
    (span,) = SpanTranslator(BASE).translate(event)
    assert span.attributes["dbt.test.name"] == "unique"
    assert "dbt.test.attached_unique_id" not in span.attributes
    assert "dbt.test.column_name" not in span.attributes


def test_the_target_names_the_database_system_before_the_adapter() -> None:
    # A target named after a known system wins; an unknown target falls back to its adapter.
    assert db_system_name(Connection(target="bigquery", adapter_type="postgres")) == "gcp.bigquery"
    assert db_system_name(Connection(target="prod", adapter_type="postgres")) == "postgresql"
    assert db_system(Connection(target="prod", adapter_type="redshift")) == "redshift"
    assert db_system(Connection(target="prod", adapter_type="oracle")) == "other_sql"


def test_server_attributes_only_when_the_connection_has_them() -> None:
    template = _finished_node("model.shop.orders")
    for host, port, expected in (
        ("db.internal", 0, {"server.address": "db.internal", "server.port": 0}),
        (None, 6543, {"server.port": 6543}),
        ("", None, {}),
    ):
        connection = Connection(target="postgres", adapter_type="postgres", host=host, port=port)
        event = msgspec.structs.replace(
            template,
            invocation=msgspec.structs.replace(template.invocation, connection=connection),
        )
        (span,) = SpanTranslator(BASE).translate(event)
        server = {k: v for k, v in span.attributes.items() if k.startswith("server.")}
        assert server == expected


def test_the_resource_is_the_base_then_the_events_attributes_then_its_environment() -> None:
    translator = SpanTranslator({"service.name": "floe", "tenant": "base", "region": "eu"})
    event = _run_finished(success=True, error=None)
    event = msgspec.structs.replace(
        event,
        environment="prod",
        attributes={"tenant": "acme", "deployment.environment.name": "from-attributes"},
    )
    (span,) = translator.translate(event)
    assert span.resource == {
        "service.name": "floe",
        "tenant": "acme",
        "region": "eu",
        "deployment.environment.name": "prod",
    }
    (bare,) = translator.translate(msgspec.structs.replace(event, environment=None, attributes={}))
    assert bare.resource == {"service.name": "floe", "tenant": "base", "region": "eu"}
    # The translator keeps its own copy of the base.
    base = {"service.name": "floe"}
    copied = SpanTranslator(base)
    base["service.name"] = "changed"
    assert copied.base_resource == {"service.name": "floe"}


def test_naive_times_are_utc() -> None:
    aware = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    assert to_unix_nanos(aware.replace(tzinfo=None)) == to_unix_nanos(aware)
    assert to_unix_nanos(aware) == 1_772_600_767_123_456_000
    offset = timezone(timedelta(hours=-5))
    assert to_unix_nanos(aware.astimezone(offset)) == to_unix_nanos(aware)


def test_log_lines_make_no_span_and_anything_else_is_refused() -> None:
    translator = SpanTranslator(BASE)
    assert translator.translate(run_log_lines(count=1)[0]) == ()
    with pytest.raises(TypeError, match="not a floe event: str"):
        translator.translate("node_finished")  # type: ignore[arg-type]


def test_both_database_system_keys_on_a_span_where_they_differ() -> None:
    template = _finished_node("model.shop.orders")
    connection = Connection(target="bigquery", adapter_type="bigquery")
    event = msgspec.structs.replace(
        template, invocation=msgspec.structs.replace(template.invocation, connection=connection)
    )
    (span,) = SpanTranslator(BASE).translate(event)
    assert (span.attributes["db.system"], span.attributes["db.system.name"]) == (
        "bigquery",
        "gcp.bigquery",
    )


def test_a_warning_or_a_success_with_error_text_is_not_an_error() -> None:
    for status in ("warn", "success"):
        event = _finished_node(
            "test.shop.unique_orders_order_id",
            status=status,
            error="Got 3 results, configured to warn if != 0",
            message="Got 3 results",
        )
        (span,) = SpanTranslator(BASE).translate(event)
        assert span.status == "ok" and span.status_message is None and span.events == ()
        assert "error.type" not in span.attributes
