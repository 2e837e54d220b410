"""dbt's log lines and floe's adapter records as log events, in the adapter: which lines, under
which span, how many, and never a credential.

The lines have the shape dbt 1.11 writes (``{"info": {...}, "data": {...}}``, the same dicts the
builder is handed whatever runs dbt). Real dbt output through a real materialization is in
test_otel_logs_metrics_end_to_end.py.
"""

from __future__ import annotations

import logging
from typing import Any

from floe_core import ids
from floe_core.artifacts import ObservabilityArtifacts
from floe_core.events import (
    Connection,
    DagsterRun,
    LogLine,
    decode_event,
    encode_event,
)
from floe_core.redaction import REDACTED, Redactor, secret_values
from floe_dagster.dbt_events import DbtEventBuilder
from floe_dagster.dbt_logs import LogBudget, LogRecordForwarder, export_level
from floe_dagster.manifest import ManifestIndex

RUN_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
INVOCATION = "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9"
MANIFEST = {
    "metadata": {"project_name": "p", "adapter_type": "duckdb"},
    "nodes": {
        "model.p.orders": {
            "unique_id": "model.p.orders",
            "name": "orders",
            "resource_type": "model",
            "package_name": "p",
            "database": "db",
            "schema": "main",
            "alias": "orders",
            "config": {"materialized": "table"},
            "depends_on": {"nodes": []},
            "original_file_path": "models/orders.sql",
            "path": "orders.sql",
        },
        "model.p.eph": {
            "unique_id": "model.p.eph",
            "name": "eph",
            "resource_type": "model",
            "package_name": "p",
            "database": "db",
            "schema": "main",
            "alias": "eph",
            "config": {"materialized": "ephemeral"},
            "depends_on": {"nodes": []},
            "original_file_path": "models/eph.sql",
            "path": "eph.sql",
        },
    },
}


def builder(level: str | None = "info", **kwargs: Any) -> DbtEventBuilder:
    return DbtEventBuilder(
        index=ManifestIndex(MANIFEST),
        run=DagsterRun(run_id=RUN_ID, job_name="job"),
        project_name="p",
        environment="prod",
        connection=Connection(target="duckdb", adapter_type="duckdb"),
        attributes={"tenant": "t"},
        log_level=level,
        **kwargs,
    )


def line(name: str, level: str, msg: str, node: str | None = None, **data: Any) -> dict[str, Any]:
    if node is not None:
        data["node_info"] = {
            "unique_id": node,
            "node_name": node.rsplit(".", 1)[1],
            "resource_type": "model",
            "materialized": "table",
            "node_status": "started",
            "node_checksum": "x" * 64,
            "meta": {"owner": "someone"},
        }
    return {
        "info": {
            "name": name,
            "code": "Q000",
            "level": level,
            "msg": msg,
            "invocation_id": INVOCATION,
            "ts": "2026-05-01T12:00:00.123456Z",
            "thread": "Thread-1 (worker)",
            "extra": {"FLOE_TRACE_ID": "x", "FLOE_SPAN_ID": "y", "JOB": "nightly"},
        },
        "data": data,
    }


def logs_of(b: DbtEventBuilder, *lines: dict[str, Any]) -> list[LogLine]:
    return [e for raw in lines for e in b.handle(raw) if isinstance(e, LogLine)]


def span(unique_id: str | None = None) -> str:
    if unique_id is None:
        return ids.span_id_hex(ids.invocation_span_id(RUN_ID, INVOCATION))
    return ids.span_id_hex(ids.node_span_id(RUN_ID, INVOCATION, unique_id))


def test_lines_at_or_above_the_level_under_their_span() -> None:
    b = builder("info")
    found = logs_of(
        b,
        line("MainReportVersion", "info", "Running with dbt=1.11.2", version="=1.11.2"),
        line("SQLQuery", "debug", "select 1", node="model.p.orders"),
        line("LogStartLine", "info", "1 of 2 START sql table model main.orders", "model.p.orders"),
        line("Formatting", "info", ""),  # dbt's spacing line: no record
        line("RunResultError", "error", "\x1b[31mBinder Error\x1b[0m", "model.p.orders"),
        line("Note", "info", "about the ephemeral one", node="model.p.eph"),
        line("Note", "warn", "a warning"),
    )
    assert [(x.level, x.message) for x in found] == [
        ("info", "Running with dbt=1.11.2"),
        ("info", "1 of 2 START sql table model main.orders"),
        ("error", "Binder Error"),  # ANSI colours removed
        ("info", "about the ephemeral one"),
        ("warn", "a warning"),
    ]
    assert found[0].span_id == span() and found[0].unique_id is None
    assert found[1].span_id == span("model.p.orders") and found[1].unique_id == "model.p.orders"
    assert found[2].span_id == span("model.p.orders")
    assert found[3].span_id == span() and found[3].unique_id is None  # ephemeral: no span
    assert {x.invocation_id for x in found} == {INVOCATION}
    assert found[1].fields["node_info.node_name"] == "orders"
    assert found[1].fields["thread"] == "Thread-1 (worker)"
    assert found[1].fields["extra.JOB"] == "nightly"
    assert not any(k.startswith("extra.FLOE_") for x in found for k in x.fields)
    assert not any("node_checksum" in k or "meta" in k for x in found for k in x.fields)
    assert found[0].fields["data.version"] == "=1.11.2"
    assert (found[0].name, found[0].code, found[0].source) == ("MainReportVersion", "Q000", "dbt")
    assert found[0].environment == "prod" and found[0].attributes == {"tenant": "t"}
    # Every log event survives the contract's encoding, and each has its own stable id.
    assert [decode_event(encode_event(x)) for x in found] == found
    assert len({x.event_id for x in found}) == len(found)
    assert all(x.event_id == y.event_id for x, y in zip(found, logs_of(builder(), *[
        line("MainReportVersion", "info", "Running with dbt=1.11.2", version="=1.11.2")
    ]), strict=False))  # fmt: skip

    debug = logs_of(builder("debug"), line("SQLQuery", "debug", "select 1", "model.p.orders"))
    assert [x.message for x in debug] == ["select 1"]
    assert logs_of(builder("error"), line("Note", "warn", "w"), line("E", "error", "e"))[
        0
    ].level == ("error")
    assert logs_of(builder(None), line("Note", "error", "no logs at all")) == []


def test_only_scalars_of_dbts_data_and_no_nested_arguments() -> None:
    [found] = logs_of(
        builder(),
        line(
            "MainReportArgs",
            "info",
            "running",
            args={"vars": "{password: hunter2}", "select": ["a"]},
            count=3,
            ratio=0.5,
            ok=True,
        ),
    )
    assert found.fields["data.count"] == 3 and found.fields["data.ratio"] == 0.5
    assert found.fields["data.ok"] is True
    assert not any("args" in key for key in found.fields)


def test_volume_is_bounded_and_the_bound_is_said() -> None:
    b = builder(log_budget=LogBudget(limit=5))
    lines = [line("Note", "info", f"line {n}") for n in range(20)]
    lines.append(line("Note", "error", "an error still gets through"))
    found = logs_of(b, *lines)
    assert [x.message for x in found] == [f"line {n}" for n in range(5)] + [
        "an error still gets through"
    ]
    dropped = b.dropped_log_lines()
    assert dropped is not None and dropped.level == "warn"
    assert "15 log lines below warn were not exported" in dropped.message
    assert builder().dropped_log_lines() is None
    [long] = logs_of(builder(), line("Note", "info", "x" * 50_000))
    assert len(long.message) < 17_000 and long.message.endswith("[floe: truncated]")


SECRETS = {
    "FLOE_SHOP_PROD_PASSWORD": "pw-sentinel-1",
    "OTEL_EXPORTER_OTLP_HEADERS": "api-key=hdr-sentinel-2,x-tenant=acme",
    "OPENLINEAGE_API_KEY": "ol-sentinel-3",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://user:url-sentinel-4@collector:4318/v1/logs",
    "OPENLINEAGE_URL": "https://marquez:5000/?token=qs-sentinel-5",
    "MY_SERVICE_TOKEN": "tok-sentinel-6",
    "HOME": "/root",
}


def test_the_redactor_knows_floes_credentials() -> None:
    found = secret_values(SECRETS, ["FLOE_SHOP_PROD_PASSWORD"])
    for value in (
        "pw-sentinel-1",
        "hdr-sentinel-2",
        "ol-sentinel-3",
        "url-sentinel-4",
        "qs-sentinel-5",
        "tok-sentinel-6",
    ):
        assert value in found
    assert "/root" not in found and "acme" in found  # every header value is a credential
    redactor = Redactor(found)
    assert redactor.redact("key pw-sentinel-1 and user:url-sentinel-4") == (
        f"key {REDACTED} and {REDACTED}"
    )
    assert Redactor(["ab"]).redact("ab") == "ab"  # too short to be worth redacting
    assert not Redactor() and Redactor(found)


def test_no_credential_in_any_log_event() -> None:
    redactor = Redactor.from_environment(SECRETS, ["FLOE_SHOP_PROD_PASSWORD"])
    b = builder(redactor=redactor)
    found = logs_of(
        b,
        line("JinjaLogInfo", "info", "connecting with pw-sentinel-1", "model.p.orders"),
        line(
            "Note",
            "error",
            "POST https://user:url-sentinel-4@collector failed",
            reason="hdr-sentinel-2",
        ),
    )
    run = DagsterRun(run_id=RUN_ID, job_name="job")
    forwarder = LogRecordForwarder(
        run=run,
        minimum="info",
        redactor=redactor,
        budget=LogBudget(),
        environment="prod",
        attributes={},
    )
    logger = logging.getLogger("floe_dagster.test_redaction")
    logger.addHandler(forwarder)
    logger.setLevel(logging.DEBUG)
    try:
        logger.warning("api key %s refused", "ol-sentinel-3", extra={"detail": "tok-sentinel-6"})
        try:
            raise RuntimeError("bad token qs-sentinel-5")
        except RuntimeError:
            logger.exception("export failed")
        logger.debug("below the level: never a record")
    finally:
        logger.removeHandler(forwarder)
    records = forwarder.drain()
    assert [r.level for r in records] == ["warn", "error"]
    assert records[1].fields["exception.type"] == "RuntimeError"
    assert records[0].span_id == ids.span_id_hex(ids.run_span_id(RUN_ID))
    text = b"".join(encode_event(e) for e in [*found, *records]).decode()
    assert REDACTED in text
    for sentinel in ("pw-sentinel-1", "hdr-sentinel-2", "ol-sentinel-3", "url-sentinel-4",
                     "qs-sentinel-5", "tok-sentinel-6"):  # fmt: skip
        assert sentinel not in text


def test_floe_records_name_the_span_they_were_logged_in() -> None:
    run = DagsterRun(run_id=RUN_ID, job_name="job")
    forwarder = LogRecordForwarder(
        run=run, minimum="info", redactor=Redactor(), budget=LogBudget(), environment=None,
        attributes={},
    )  # fmt: skip
    logger = logging.getLogger("floe_dagster.test_spans")
    logger.addHandler(forwarder)
    logger.setLevel(logging.INFO)
    try:
        logger.info("in a node", extra={"trace_id": "t" * 32, "span_id": span("model.p.orders"),
                                        "unique_id": "model.p.orders"})  # fmt: skip
    finally:
        logger.removeHandler(forwarder)
    [record] = forwarder.drain()
    assert record.span_id == span("model.p.orders") and record.unique_id == "model.p.orders"
    assert record.source == "floe" and record.name == "floe_dagster.test_spans"


def test_logs_switch_off_as_floe_yaml_and_otel_say() -> None:
    on = ObservabilityArtifacts(traces=True, logs=True, log_level="warn")
    assert export_level(on, {}) == "warn"
    assert export_level(ObservabilityArtifacts(traces=True, logs=False), {}) is None
    assert export_level(on, {"OTEL_LOGS_EXPORTER": "none"}) is None
    assert export_level(on, {"OTEL_SDK_DISABLED": "true"}) is None
