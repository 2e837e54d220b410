"""Logs and metrics from the sidecar, part by part: the pure translations, the cumulative totals
and why a batch delivered twice counts once, delivery to real loopback OTLP receivers (gRPC and
HTTP), the throttle (429 with Retry-After), and the configuration of the two signals.

The whole picture (a real materialization with a failing model, receivers down then up, the
sidecar restarted) is in test_otel_logs_metrics_end_to_end.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from support import data
from support.data import STEPS, TRACE_RUN_ID, run_events, run_log_lines
from support.otlp_receivers import GrpcReceiver, HttpReceiver, ReceivedPoint

from floe_core import ids
from floe_core.errors import OtlpExportError, TraceConfigError
from floe_core.events import NodeFinished
from floe_core.layout import LOGS_SINK, METRICS_SINK
from floe_sidecar.engine.cursor import load_cursor
from floe_sidecar.engine.deadletter import DeadLetter
from floe_sidecar.engine.pipeline import SinkPipeline
from floe_sidecar.engine.retry import RetryPolicy, parse_retry_after
from floe_sidecar.engine.undeliverable import Undeliverable
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.otel.config import (
    FileExport,
    OtlpExport,
    SignalConfig,
    resolve_signal_config,
)
from floe_sidecar.sinks.otel.logs import LogTranslator
from floe_sidecar.sinks.otel.logs_sink import LogSink, build_log_sink
from floe_sidecar.sinks.otel.metrics import REMEMBERED_RUNS, MetricTranslator, Totals
from floe_sidecar.sinks.otel.metrics_sink import MetricSink, build_metric_sink
from floe_sidecar.sinks.otel.translate import to_unix_nanos

BASE = {"service.name": "floe"}


def _settings(tmp_path: Path, artifacts: Any = None, **environ: str) -> SidecarSettings:
    return SidecarSettings(spool_dir=tmp_path / "spool", artifacts=artifacts, environ=environ)


def _otlp_config(signal: Any, receiver: GrpcReceiver | HttpReceiver, **extra: str) -> SignalConfig:
    protocol = "grpc" if isinstance(receiver, GrpcReceiver) else "http/protobuf"
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        **extra,
    }
    config = resolve_signal_config(
        SidecarSettings(spool_dir=Path("spool"), environ=environ), signal
    )
    assert config is not None
    return config


# --- translation ------------------------------------------------------------------------------


def test_a_log_line_becomes_one_record_under_its_span() -> None:
    lines = run_log_lines()
    broken_error = next(x for x in lines if x.level == "error" and "broken" in str(x.unique_id))
    record = LogTranslator(BASE).record(broken_error)
    assert record.trace_id == ids.trace_id_hex(TRACE_RUN_ID)
    assert record.span_id == broken_error.span_id
    assert (record.severity_number, record.severity_text) == (17, "ERROR")
    assert record.body == broken_error.message
    assert record.attributes["log.record.uid"] == broken_error.event_id
    assert record.attributes["dbt.unique_id"] == "model.shop.broken"
    assert record.attributes["dbt.event.name"] == "LogModelResult"
    assert record.attributes["thread.name"] == "Thread-1 (worker)"
    assert record.attributes["dbt.data.index"] == broken_error.fields["data.index"]
    assert record.attributes["cicd.pipeline.run.id"] == TRACE_RUN_ID
    # The same resource as the spans: the tenant attributes and the environment.
    assert record.resource == {
        "service.name": "floe",
        "tenant": "acme",
        "team": "data",
        "deployment.environment.name": "staging",
    }
    floe_record = LogTranslator(BASE).record(lines[-1])
    assert floe_record.severity_text == "WARN"
    assert floe_record.attributes["floe.logger"] == "floe_dagster.step"
    assert floe_record.attributes["floe.events_dropped"] == 1
    assert floe_record.span_id == ids.span_id_hex(ids.run_span_id(TRACE_RUN_ID))
    # Only log lines make records.
    assert all(LogTranslator(BASE).translate(event) == () for event in run_events())


def _totals(events: list[Any]) -> dict[tuple[str, tuple[Any, ...]], Any]:
    translator = MetricTranslator(BASE)
    samples = [s for e in events for s in translator.translate(e)]
    totals, _ = Totals().add(samples)
    return {(k[0], k[1]): v for k, v in totals.series.items()}


def _by(series: dict[tuple[str, tuple[Any, ...]], Any], metric: str, unique_id: str) -> Any:
    found = [
        s
        for (m, attrs), s in series.items()
        if m == metric and ("dbt.unique_id", unique_id) in attrs
    ]
    assert len(found) == 1, (metric, unique_id, found)
    return found[0]


def test_events_become_the_metrics_of_the_run() -> None:
    series = _totals(run_events())
    for step in STEPS:
        executions = _by(series, "dbt.node.executions", step.unique_id)
        assert executions.total == 1 and dict(executions.attributes)["dbt.status"] == step.status
        if step.start is not None:
            duration = _by(series, "dbt.node.duration", step.unique_id)
            assert duration.count == 1
            assert duration.total == pytest.approx(step.end - step.start, abs=1e-6)
            assert sum(duration.buckets) == 1
        else:  # skipped: it never ran, it has no duration
            assert not [
                k for k in series if k[0] == "dbt.node.duration" and step.unique_id in str(k)
            ]
        if step.rows is not None:
            assert _by(series, "dbt.node.rows_affected", step.unique_id).total == step.rows
    assert _by(series, "dbt.test.failures", "test.shop.accepted_orders_status").total == 1
    assert _by(series, "dbt.test.failing_rows", "test.shop.accepted_orders_status").total == 2
    aborted = _by(series, "dbt.node.executions", "model.shop.slow")
    assert dict(aborted.attributes)["dbt.status"] == "aborted"
    runs = [s for (m, _), s in series.items() if m == "floe.pipeline.runs"]
    assert len(runs) == 1 and dict(runs[0].attributes)["cicd.pipeline.result"] == "failure"
    errors = [s for (m, _), s in series.items() if m == "cicd.pipeline.run.errors"]
    assert [e.total for e in errors] == [1]
    [run_duration] = [s for (m, _), s in series.items() if m == "cicd.pipeline.run.duration"]
    assert run_duration.total == pytest.approx(data.RUN_END + 2)  # the run started at -2 s
    # No run or invocation id makes its way into an attribute (one series per run otherwise).
    for _, attributes in series:
        assert not {k for k, _ in attributes} & {"cicd.pipeline.run.id", "dbt.invocation_id"}


def test_a_test_that_warns_counts_as_a_warning_not_a_failure() -> None:
    warned = "test.shop.unique_orders_order_id"
    events = [
        msgspec.structs.replace(e, status="warn", message="Got 1 result", failures=1)
        if isinstance(e, NodeFinished) and e.node.unique_id == warned
        else e
        for e in run_events()
    ]
    series = _totals(events)
    assert _by(series, "dbt.test.warnings", warned).total == 1
    assert _by(series, "dbt.test.failing_rows", warned).total == 1
    assert dict(_by(series, "dbt.node.executions", warned).attributes)["dbt.status"] == "warn"
    assert not [k for k in series if k[0] == "dbt.test.failures" and warned in str(k)]
    # The failing test is still a failure and never a warning.
    failed = "test.shop.accepted_orders_status"
    assert _by(series, "dbt.test.failures", failed).total == 1
    assert not [k for k in series if k[0] == "dbt.test.warnings" and failed in str(k)]


def test_an_event_counts_once_however_often_it_is_delivered() -> None:
    translator = MetricTranslator(BASE)
    events = run_events()
    samples = [s for e in events for s in translator.translate(e)]
    once, _ = Totals().add(samples)
    # The same events twice in one batch (the adapter spooled lines the sidecar had taken) and
    # again in a later batch: the totals do not move.
    twice, _ = Totals().add(samples + samples)
    again, touched = once.add(samples)
    for series in (twice, again):
        assert {k: (v.count, v.total) for k, v in series.series.items()} == {
            k: (v.count, v.total) for k, v in once.series.items()
        }
    assert touched == []  # nothing new to export
    # A new run's events do count, and the start time of a series never moves.
    other = [s for e in run_events(run_id="11111111-2222-4333-8444-555555555555") for s in
             translator.translate(e)]  # fmt: skip
    later, _ = once.add(other)
    key = next(k for k in once.series if k[0] == "floe.pipeline.runs")
    assert later.series[key].total == 2
    assert (
        later.series[key].start_ns
        == once.series[key].start_ns
        == to_unix_nanos(
            data.at(data.RUN_END)  # the first event the series counted
        )
    )
    # The totals survive the cursor (encode/decode) exactly.
    restored = Totals.decode(later.encode())
    assert restored.encode() == later.encode()


def test_only_the_last_runs_are_remembered() -> None:
    translator = MetricTranslator(BASE)
    totals = Totals()
    for n in range(REMEMBERED_RUNS + 3):
        run_id = f"00000000-0000-4000-8000-{n:012d}"
        finished = run_events(run_id=run_id)[-1]
        totals, _ = totals.add(list(translator.translate(finished)))
    assert len(totals.counted) == REMEMBERED_RUNS
    assert "00000000-0000-4000-8000-000000000000" not in totals.counted


# --- delivery to real receivers ------------------------------------------------------------


@pytest.fixture(params=["grpc", "http"])
def receiver(request: pytest.FixtureRequest) -> Iterator[GrpcReceiver | HttpReceiver]:
    with GrpcReceiver() if request.param == "grpc" else HttpReceiver() as server:
        yield server


def test_log_records_reach_the_receiver(receiver: GrpcReceiver | HttpReceiver) -> None:
    sink = LogSink(_otlp_config("logs", receiver))
    items = [item for line in run_log_lines() for item in sink.translate(line)]
    sink.deliver(items)
    sink.close()
    received = receiver.logs()
    assert len(received) == len(items)
    by_uid = {r.attributes["log.record.uid"]: r for r in received}
    for line in run_log_lines():
        record = by_uid[line.event_id]
        assert record.trace_id == ids.trace_id_hex(TRACE_RUN_ID)
        assert record.span_id == line.span_id
        assert record.body == line.message
        assert record.record.time_unix_nano == to_unix_nanos(line.at)  # dbt's time, exact
        assert record.scope == "floe_sidecar.otel"
        assert record.resource["tenant"] == "acme"


def _points(receiver: GrpcReceiver | HttpReceiver) -> dict[tuple[str, str | None], ReceivedPoint]:
    """The latest point per (metric, node)."""
    latest: dict[tuple[str, str | None], ReceivedPoint] = {}
    for point in receiver.points():
        latest[(point.metric, point.attributes.get("dbt.unique_id"))] = point
    return latest


def test_metrics_reach_the_receiver_cumulative(receiver: GrpcReceiver | HttpReceiver) -> None:
    sink = MetricSink(_otlp_config("metrics", receiver))
    sink.restore(None)
    samples = [s for e in run_events() for s in sink.translate(e)]
    sink.deliver(samples)
    sink.committed()
    points = _points(receiver)
    orders = points[("dbt.node.duration", "model.shop.orders")]
    assert orders.kind == "histogram" and orders.temporality == 2 and orders.count == 1
    assert orders.value == pytest.approx(0.45)
    assert orders.unit == "s"
    executions = points[("dbt.node.executions", "model.shop.broken")]
    assert executions.kind == "sum" and executions.monotonic and executions.value == 1
    assert executions.attributes["cicd.pipeline.task.run.result"] == "error"
    assert points[("dbt.node.rows_affected", "seed.shop.raw_orders")].value == 6
    assert executions.resource["deployment.environment.name"] == "staging"
    # The sidecar's health: counters from the cursors' lifetime totals, gauges of the moment.
    from floe_core.status import SidecarStatus, SinkStatus

    status = SidecarStatus(
        spool="spool",
        running=True,
        deadletter_records=3,
        sinks=(
            SinkStatus(
                name="otel", delivered=10, pending_events=4, pending_bytes=900,
                oldest_pending_age_s=12.5, dead_lettered=1, counting_since=1_700_000_000.0,
            ),
        ),
    )  # fmt: skip
    sink.observe(status)
    health = {(p.metric, p.attributes.get("floe.sink")): p for p in receiver.points()}
    assert health[("floe.sidecar.delivered", "otel")].value == 10
    assert health[("floe.sidecar.delivered", "otel")].start_ns == 1_700_000_000 * 10**9
    assert health[("floe.sidecar.pending", "otel")].value == 4
    assert health[("floe.sidecar.pending.size", "otel")].value == 900
    assert health[("floe.sidecar.pending.age", "otel")].value == 12.5
    assert health[("floe.sidecar.dead_lettered", "otel")].value == 1
    assert health[("floe.sidecar.deadletter.size", None)].value == 3
    sink.close()


def _pipeline(tmp_path: Path, sink: Any) -> SinkPipeline:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    undeliverable = Undeliverable(
        DeadLetter(state / "dead.ndjson"), state / "reported.json", 1024 * 1024
    )
    return SinkPipeline(sink, tmp_path / "spool", state / f"{sink.name}.json", undeliverable)


def test_a_batch_delivered_again_counts_once_and_totals_outlive_the_process(
    tmp_path: Path,
) -> None:
    """Exported, then the cursor could not be saved: retried by the same sidecar, or delivered
    again by the next one from the cursor's totals and positions, the receiver gets the same
    cumulative values, never doubled ones; and a later sidecar adds the next run on top of the
    saved totals, with the same start times."""
    from floe_core.events import encode_event
    from floe_core.spool import SpoolWriter

    spool = tmp_path / "spool"
    with SpoolWriter(spool, prefix="adapter") as writer:
        writer.append(b"".join(encode_event(e) for e in run_events()))
    with HttpReceiver() as receiver:
        config = _otlp_config("metrics", receiver)
        pipeline = _pipeline(tmp_path, MetricSink(config))
        batch = pipeline.prepare()
        assert batch is not None
        # The cursor cannot be written (a directory is in its way), as if the sidecar had been
        # killed right after the export.
        cursor_path = tmp_path / "state" / f"{METRICS_SINK}.json"
        cursor_path.mkdir()
        for _ in range(2):  # and the engine's retry of the same batch fails the same way
            with pytest.raises(OSError):
                pipeline.deliver(batch)
        first = _points(receiver)
        assert len(receiver.metric_requests) == 2
        exported = receiver.points()
        assert exported[: len(exported) // 2] == exported[len(exported) // 2 :]  # the very same
        cursor_path.rmdir()
        restarted = _pipeline(tmp_path, MetricSink(config))  # a new process, from the cursor
        batch = restarted.prepare()
        assert batch is not None
        restarted.deliver(batch)
        assert restarted.prepare() is None  # caught up
        second = _points(receiver)
        for key, point in first.items():
            assert second[key].value == point.value, key  # the same totals, not twice them
            assert second[key].count == point.count
        runs_key = ("floe.pipeline.runs", None)
        assert second[runs_key].value == 1
        # The next run, read by yet another sidecar: added to the saved totals, same start.
        with SpoolWriter(spool, prefix="adapter") as writer:
            other = run_events(run_id="11111111-2222-4333-8444-555555555555")
            writer.append(b"".join(encode_event(e) for e in other))
        third = _pipeline(tmp_path, MetricSink(config))
        batch = third.prepare()
        assert batch is not None
        third.deliver(batch)
        third_points = _points(receiver)
        assert third_points[runs_key].value == 2
        assert third_points[runs_key].start_ns == second[runs_key].start_ns
        orders = ("dbt.node.duration", "model.shop.orders")
        assert third_points[orders].count == 2
        cursor = load_cursor(cursor_path, METRICS_SINK)
        totals = Totals.decode(bytes(cursor.state))
        assert set(totals.counted) == {TRACE_RUN_ID, "11111111-2222-4333-8444-555555555555"}


def test_throttled_exports_carry_the_retry_after() -> None:
    with HttpReceiver(mode="throttle") as receiver:
        receiver.retry_after = "30"  # longer than the export timeout: the SDK gives up at once
        sink = LogSink(_otlp_config("logs", receiver, OTEL_EXPORTER_OTLP_TIMEOUT="2000"))
        items = [item for line in run_log_lines(1) for item in sink.translate(line)]
        with pytest.raises(OtlpExportError, match="429") as failure:
            sink.deliver(items)
        assert failure.value.retry_after == 30
        receiver.fail("ok")
        sink.deliver(items)
        assert receiver.log_count() == len(items)
    policy = RetryPolicy(initial_delay=0.5, max_delay=2.0, max_throttle_delay=60)
    assert policy.delay_after(1, 30.0) == 30.0  # the endpoint's pause, not the backoff's
    assert policy.delay_after(1, 3600.0) == 60  # capped
    assert policy.delay_after(1, 0.01) <= 0.5  # shorter than the backoff: the backoff
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412400.0) == 80.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_a_log_line_a_sink_ignores_is_never_dead_lettered(tmp_path: Path) -> None:
    """Every built-in sink reads the same spool: the lineage and trace sinks skip log lines."""
    from floe_sidecar.sinks.openlineage.translate import translate_event
    from floe_sidecar.sinks.otel.translate import SpanTranslator

    for line in run_log_lines(1):
        assert SpanTranslator(BASE).translate(line) == ()
        assert translate_event(line) == []
        assert MetricTranslator(BASE).translate(line) == ()


# --- configuration ---------------------------------------------------------------------------


def test_logs_and_metrics_follow_floe_yaml_and_the_otel_switches(tmp_path: Path) -> None:
    on = data.artifacts(traces=True, logs=True, metrics=True)
    assert build_log_sink(_settings(tmp_path, on)) is not None
    assert build_metric_sink(_settings(tmp_path, on)) is not None
    off = data.artifacts(traces=True, logs=False, metrics=False)
    assert build_log_sink(_settings(tmp_path, off)) is None
    assert build_metric_sink(_settings(tmp_path, off)) is None
    assert build_log_sink(_settings(tmp_path, on, OTEL_LOGS_EXPORTER="none")) is None
    assert build_metric_sink(_settings(tmp_path, on, OTEL_METRICS_EXPORTER="none")) is None
    assert build_log_sink(_settings(tmp_path, on, OTEL_SDK_DISABLED="true")) is None
    with pytest.raises(TraceConfigError, match="OTEL_LOGS_EXPORTER='console'"):
        build_log_sink(_settings(tmp_path, on, OTEL_LOGS_EXPORTER="console"))
    # No endpoint: local OTLP/JSON files beside the traces.
    logs = resolve_signal_config(_settings(tmp_path, on), "logs")
    metrics = resolve_signal_config(_settings(tmp_path, on), "metrics")
    assert logs is not None and isinstance(logs.export, FileExport)
    assert logs.export.path == tmp_path / "logs" / "otlp-logs.jsonl"
    assert metrics is not None and isinstance(metrics.export, FileExport)
    assert metrics.export.path == tmp_path / "metrics" / "otlp-metrics.jsonl"
    # One writer per cumulative series: each sidecar (spool) is its own, stable, instance.
    instance = build_metric_sink(_settings(tmp_path, on))
    again = build_metric_sink(_settings(tmp_path, on))
    other = build_metric_sink(SidecarSettings(spool_dir=tmp_path / "other", artifacts=on))
    assert instance is not None and again is not None and other is not None
    instance_id = instance.config.resource["service.instance.id"]
    assert instance_id == again.config.resource["service.instance.id"]
    assert instance_id != other.config.resource["service.instance.id"]
    named = build_metric_sink(
        _settings(tmp_path, on, OTEL_RESOURCE_ATTRIBUTES="service.instance.id=pod-7")
    )
    assert named is not None and named.config.resource["service.instance.id"] == "pod-7"


def test_signal_endpoints_and_settings(tmp_path: Path) -> None:
    on = data.artifacts(traces=True, logs=True, metrics=True, otlp_endpoint="http://c:4318")
    logs = resolve_signal_config(_settings(tmp_path, on), "logs")
    assert logs is not None and isinstance(logs.export, OtlpExport)
    assert logs.export.endpoint == "http://c:4318/v1/logs"
    metrics = resolve_signal_config(
        _settings(
            tmp_path,
            on,
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT="http://m:9999/custom",
            OTEL_EXPORTER_OTLP_METRICS_HEADERS="api-key=s3cr3t",
            OTEL_EXPORTER_OTLP_HEADERS="api-key=general",
            OTEL_METRIC_EXPORT_INTERVAL="15000",
            OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="cumulative",
        ),
        "metrics",
    )
    assert metrics is not None and isinstance(metrics.export, OtlpExport)
    assert metrics.export.endpoint == "http://m:9999/custom"  # a signal endpoint is used as is
    assert dict(metrics.export.headers) == {"api-key": "s3cr3t"}
    assert "s3cr3t" not in repr(metrics)
    assert metrics.health_interval_s == 15.0
    logs_batch = resolve_signal_config(
        _settings(tmp_path, on, OTEL_BLRP_MAX_EXPORT_BATCH_SIZE="64"), "logs"
    )
    assert logs_batch is not None and logs_batch.max_batch == 64
    with pytest.raises(TraceConfigError, match="cumulative"):
        resolve_signal_config(
            _settings(tmp_path, on, OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="delta"),
            "metrics",
        )
    with pytest.raises(TraceConfigError, match="OTEL_METRIC_EXPORT_INTERVAL"):
        resolve_signal_config(
            _settings(tmp_path, on, OTEL_METRIC_EXPORT_INTERVAL="often"), "metrics"
        )


def test_local_files_are_otlp_json_lines(tmp_path: Path) -> None:
    on = data.artifacts(traces=True, logs=True, metrics=True)
    logs = build_log_sink(_settings(tmp_path, on))
    metrics = build_metric_sink(_settings(tmp_path, on))
    assert logs is not None and metrics is not None
    logs.deliver([i for line in run_log_lines(1) for i in logs.translate(line)])
    metrics.restore(None)
    metrics.deliver([s for e in run_events() for s in metrics.translate(e)])
    log_file = tmp_path / "logs" / "otlp-logs.jsonl"
    [request] = [json.loads(line) for line in log_file.read_text().splitlines()]
    record = request["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert record["traceId"] == ids.trace_id_hex(TRACE_RUN_ID)  # hex, as OTLP/JSON says
    assert len(record["spanId"]) == 16
    assert oct((log_file.stat().st_mode) & 0o777) == "0o600"
    metric_file = tmp_path / "metrics" / "otlp-metrics.jsonl"
    names = {
        m["name"]
        for line in metric_file.read_text().splitlines()
        for rm in json.loads(line)["resourceMetrics"]
        for sm in rm["scopeMetrics"]
        for m in sm["metrics"]
    }
    assert {"dbt.node.duration", "dbt.node.executions", "floe.pipeline.runs"} <= names
    assert logs.name == LOGS_SINK and metrics.name == METRICS_SINK


def test_node_finished_without_dbt_execution_time_uses_its_timestamps() -> None:
    finished = next(
        e for e in run_events() if isinstance(e, NodeFinished) and e.started_at is not None
    )
    assert finished.execution_time_s is None
    [duration] = [
        s for s in MetricTranslator(BASE).translate(finished) if s.metric == "dbt.node.duration"
    ]
    assert finished.started_at is not None
    assert duration.value == (finished.finished_at - finished.started_at).total_seconds()


# --- Retry-After, in every HTTP sink ------------------------------------------------------


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_every_otlp_http_sink_reads_retry_after(signal: Any) -> None:
    from floe_sidecar.sinks.otel.sink import TraceSink

    with HttpReceiver(mode="throttle") as receiver:
        receiver.retry_after = "45"
        config = _otlp_config(signal, receiver, OTEL_EXPORTER_OTLP_TIMEOUT="1000")
        sink: Any = {"traces": TraceSink, "logs": LogSink, "metrics": MetricSink}[signal](config)
        source = run_log_lines(1) if signal == "logs" else run_events()
        items = [item for event in source for item in sink.translate(event)]
        with pytest.raises(OtlpExportError) as failure:
            sink.deliver(items)
        assert failure.value.retry_after == 45
        assert "HTTP 429" in str(failure.value)
        receiver.fail("unavailable")  # a 503 without Retry-After: the engine's own backoff
        with pytest.raises(OtlpExportError) as failure:
            sink.deliver(items)
        assert failure.value.retry_after is None
        sink.close()


def test_openlineage_http_reads_retry_after() -> None:
    from support.lineage import Receiver

    from floe_core.errors import ThrottledError
    from floe_sidecar.sinks.openlineage.delivery import HttpDelivery

    receiver = Receiver(mode="throttle", retry_after="7").start()
    try:
        delivery = HttpDelivery({"type": "http", "url": receiver.url})
        with pytest.raises(ThrottledError) as failure:
            delivery.deliver([b'{"eventType": "START"}', b'{"eventType": "COMPLETE"}'])
        assert failure.value.retry_after == 7
        receiver.mode = "ok"
        assert delivery.deliver([b'{"eventType": "START", "job": {"name": "j"}}']) == []
        delivery.close()
    finally:
        receiver.stop()


@pytest.mark.slow
def test_the_engine_waits_as_long_as_retry_after_says(tmp_path: Path) -> None:
    """A throttled endpoint is asked again after its Retry-After, not at the backoff's pace."""
    import msgspec
    from support.loopback import wait_for
    from support.sidecar import SidecarProcess

    from floe_core.events import encode_event
    from floe_core.spool import SpoolWriter

    with SpoolWriter(tmp_path / "spool", prefix="adapter") as writer:
        writer.append(b"".join(encode_event(e) for e in run_log_lines(1)))
    artifacts = tmp_path / "artifacts.json"
    artifacts.write_bytes(msgspec.json.encode(data.artifacts(logs=True)))
    with HttpReceiver(mode="throttle") as receiver:
        receiver.retry_after = "3"
        sidecar = SidecarProcess(
            tmp_path / "logs",
            "--spool", tmp_path / "spool", "--artifacts", artifacts,
            "--retry-initial", "0.05", "--retry-max", "0.1",
            OTEL_SDK_DISABLED="",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_TIMEOUT="1000",
        )  # fmt: skip
        try:
            wait_for(lambda: receiver.refused.get("logs", 0) >= 1, 30, "a first attempt")
            first = time.monotonic()
            wait_for(lambda: receiver.refused.get("logs", 0) >= 2, 30, "a second attempt")
            # The backoff alone would have asked about 20 times in these 3 seconds.
            assert time.monotonic() - first >= 2.5
            receiver.fail("ok")
            wait_for(lambda: receiver.log_count() == len(run_log_lines(1)), 30, "the records")
            throttled = [r for r in sidecar.logs() if r.get("retry_after_s") == 3]
            assert throttled and "Retry-After" in str(throttled[0]["message"])
        finally:
            sidecar.terminate()
