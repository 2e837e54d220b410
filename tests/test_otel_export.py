"""The trace sink against real OTLP receivers on loopback (gRPC and HTTP), working and failing."""

from __future__ import annotations

import base64
import datetime as dt
import json
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TypeAlias

import grpc
import pytest
from google.protobuf.json_format import ParseDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from support import data
from support.data import (
    TRACE_INVOCATION_ID as INVOCATION_ID,
)
from support.data import (
    TRACE_JOB as JOB,
)
from support.data import (
    TRACE_RUN_ID as RUN_ID,
)
from support.data import (
    executed_node_ids,
    run_events,
)
from support.environment import need
from support.loopback import free_port
from support.otlp_receivers import GrpcReceiver, HttpReceiver, ReceivedSpan, flatten

from floe_core.artifacts import CompiledArtifacts
from floe_core.events import NodeFinished
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.otel.exporters import otlp_json
from floe_sidecar.sinks.otel.sink import (
    TraceExportError,
    TraceSink,
    build_trace_sink,
    to_readable_span,
)
from floe_sidecar.sinks.otel.translate import SpanRecord, to_unix_nanos

Receiver: TypeAlias = GrpcReceiver | HttpReceiver
TIMEOUT_MS = 1500


def _artifacts(endpoint: str | None) -> CompiledArtifacts:
    return data.artifacts(
        environment="staging", traces=True, otlp_endpoint=endpoint, attributes={"tenant": "acme"}
    )


def _sink(tmp_path: Path, protocol: str, port: int, **environ: str) -> TraceSink:
    scheme_endpoint = f"http://127.0.0.1:{port}"
    settings = SidecarSettings(
        spool_dir=tmp_path / "spool",
        artifacts=_artifacts(scheme_endpoint),
        environ={
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_TIMEOUT": str(TIMEOUT_MS),
            "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=k3y",
            **environ,
        },
    )
    sink = build_trace_sink(settings)
    assert sink is not None
    return sink


def _receiver(protocol: str, port: int = 0) -> Receiver:
    return GrpcReceiver(port) if protocol == "grpc" else HttpReceiver(port)


def _records(sink: TraceSink) -> list[SpanRecord]:
    return [record for event in run_events() for record in sink.translate(event)]


@pytest.fixture(params=["grpc", "http/protobuf"])
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def receiver(protocol: str) -> Iterator[Receiver]:
    with _receiver(protocol) as running:
        yield running


def _check_trace(spans: list[ReceivedSpan]) -> None:
    """The acceptance checks: one span per node plus run and invocation, one trace, parents,
    dbt's times, attributes and resource."""
    run_hex = uuid.UUID(RUN_ID).hex
    assert {s.trace_id for s in spans} == {run_hex}
    by_name = {s.span.name: s for s in spans}
    node_spans = [s for s in spans if "dbt.unique_id" in s.attributes]
    assert len(spans) == len(executed_node_ids()) + 2
    assert sorted(s.attributes["dbt.unique_id"] for s in node_spans) == sorted(executed_node_ids())
    run = by_name[f"RUN {JOB}"]
    invocation = by_name["dbt build"]
    assert run.parent_span_id is None
    assert invocation.parent_span_id == run.span_id
    assert all(s.parent_span_id == invocation.span_id for s in node_spans)
    finished = {e.node.unique_id: e for e in run_events() if isinstance(e, NodeFinished)}
    for unique_id, event in finished.items():
        span = by_name[unique_id].span
        assert abs(span.end_time_unix_nano - to_unix_nanos(event.finished_at)) < 1_000_000
        if event.started_at is not None:
            assert abs(span.start_time_unix_nano - to_unix_nanos(event.started_at)) < 1_000_000
    orders = by_name["model.shop.orders"]
    assert orders.attributes["floe.asset_key"] == "shop/orders"
    assert orders.attributes["dbt.relation"] == "shop.main.orders"
    assert orders.attributes["dbt.materialization"] == "table"
    assert orders.attributes["dbt.rows_affected"] == 6
    assert orders.attributes["db.system"] == "duckdb"
    assert orders.attributes["cicd.pipeline.run.id"] == RUN_ID
    assert orders.attributes["cicd.pipeline.name"] == JOB
    assert orders.attributes["dbt.invocation_id"] == INVOCATION_ID
    assert orders.resource["service.name"] == "floe"
    assert orders.resource["tenant"] == "acme"
    assert orders.resource["deployment.environment.name"] == "staging"
    broken = by_name["model.shop.broken"].span
    assert broken.status.code == broken.status.STATUS_CODE_ERROR
    assert broken.events[0].name == "exception"
    assert orders.span.status.code == orders.span.status.STATUS_CODE_OK


def test_every_span_reaches_the_receiver(tmp_path: Path, protocol: str, receiver: Receiver) -> None:
    sink = _sink(tmp_path, protocol, receiver.port)
    try:
        assert sink.deliver(_records(sink)) == ()
    finally:
        sink.close()
    _check_trace(receiver.spans())
    assert all(headers.get("x-api-key") == "k3y" for headers in receiver.headers)
    assert {s.scope for s in receiver.spans()} == {"floe_sidecar.otel"}


def test_batches_and_gzip(tmp_path: Path, protocol: str, receiver: Receiver) -> None:
    sink = _sink(
        tmp_path,
        protocol,
        receiver.port,
        OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="3",
    )
    records = _records(sink)
    try:
        for start in range(0, len(records), sink.max_batch):
            sink.deliver(records[start : start + sink.max_batch])
    finally:
        sink.close()
    assert len(receiver.requests) == -(-len(records) // 3)
    _check_trace(receiver.spans())


@pytest.mark.parametrize("mode", ["unavailable", "hang"])
def test_a_failing_receiver_makes_deliver_raise_then_the_retry_delivers(
    tmp_path: Path, protocol: str, receiver: Receiver, mode: str
) -> None:
    sink = _sink(tmp_path, protocol, receiver.port)
    records = _records(sink)
    receiver.fail("unavailable" if mode == "unavailable" else "hang")
    try:
        started = time.monotonic()
        with pytest.raises(TraceExportError, match=r"spans to .*127\.0\.0\.1") as caught:
            sink.deliver(records)
        elapsed = time.monotonic() - started
        # Bounded by the configured timeout (plus the exporter's last attempt), never stuck.
        assert elapsed < TIMEOUT_MS / 1000 + 2.5, elapsed
        assert "k3y" not in str(caught.value)
        if mode == "unavailable":  # what the endpoint said, for the sidecar's status
            reason = "UNAVAILABLE" if protocol == "grpc" else "Service Unavailable"
            assert reason in str(caught.value)
        assert receiver.span_count() == 0
        receiver.fail("ok")
        sink.deliver(records)  # what the engine does: the same batch again
    finally:
        sink.close()
    _check_trace(receiver.spans())


def test_receiver_down_then_up(tmp_path: Path, protocol: str) -> None:
    port = free_port()
    sink = _sink(tmp_path, protocol, port)
    records = _records(sink)
    try:
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(TraceExportError):
                sink.deliver(records)
            assert time.monotonic() - started < TIMEOUT_MS / 1000 + 2.5
        with _receiver(protocol, port) as receiver:
            # Right after the receiver comes up, a gRPC channel may still be in its reconnect
            # backoff (seen with the 1.35 exporter): that attempt fails as retryable, and the
            # engine tries again, as here. It must succeed within a few attempts.
            deadline = time.monotonic() + 15
            while True:
                try:
                    sink.deliver(records)
                    break
                except TraceExportError as exc:
                    assert not exc.permanent, exc
                    assert time.monotonic() < deadline, f"never delivered: {exc}"
                    time.sleep(0.5)
            _check_trace(receiver.spans())
    finally:
        sink.close()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        need(False, "the `cryptography` package (installed with the test dependencies)")
        raise
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "server.pem", tmp_path / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_grpc_over_tls_with_a_custom_ca(tmp_path: Path) -> None:
    cert_path, key_path = _self_signed(tmp_path)
    credentials = grpc.ssl_server_credentials([(key_path.read_bytes(), cert_path.read_bytes())])
    with GrpcReceiver(credentials=credentials) as receiver:
        settings = SidecarSettings(
            spool_dir=tmp_path / "spool",
            artifacts=_artifacts(f"https://localhost:{receiver.port}"),
            environ={
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_CERTIFICATE": str(cert_path),
                "OTEL_EXPORTER_OTLP_TIMEOUT": str(TIMEOUT_MS),
            },
        )
        sink = build_trace_sink(settings)
        assert sink is not None
        try:
            sink.deliver(_records(sink))
        finally:
            sink.close()
        _check_trace(receiver.spans())


def test_local_file_holds_otlp_json_lines(tmp_path: Path) -> None:
    settings = SidecarSettings(spool_dir=tmp_path / "spool", artifacts=_artifacts(None))
    sink = build_trace_sink(settings)
    assert sink is not None
    records = _records(sink)
    sink.deliver(records[:4])
    sink.deliver(records[4:])
    sink.close()
    path = tmp_path / "traces" / "otlp-traces.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    spans = [span for line in lines for span in _from_otlp_json(line)]
    _check_trace(spans)
    first = json.loads(lines[0])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert first["traceId"] == uuid.UUID(RUN_ID).hex  # hex ids, as OTLP/JSON requires
    assert isinstance(first["kind"], int)


def test_local_file_after_a_torn_last_line(tmp_path: Path) -> None:
    settings = SidecarSettings(spool_dir=tmp_path / "spool", artifacts=_artifacts(None))
    sink = build_trace_sink(settings)
    assert sink is not None
    path = tmp_path / "traces" / "otlp-traces.jsonl"
    path.parent.mkdir(mode=0o700, parents=True)
    path.write_text('{"resourceSpans":[{"resou')  # a crash cut this write short
    sink.deliver(_records(sink))
    lines = path.read_text().splitlines()
    assert lines[0] == '{"resourceSpans":[{"resou'
    _check_trace(list(_from_otlp_json(lines[1])))


def _from_otlp_json(line: str) -> Iterator[ReceivedSpan]:
    """Parse one OTLP/JSON line back into the protobuf request (hex ids -> bytes)."""
    data = json.loads(line)
    for resource_spans in data["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    request = ParseDict(data, ExportTraceServiceRequest())
    yield from flatten(request)


def test_file_encoding_round_trips_the_exporters_encoding(tmp_path: Path) -> None:
    sink = _sink(tmp_path, "grpc", 4317)  # never exports: only its translation is used
    records = _records(sink)
    sink.close()
    spans = [to_readable_span(r, Resource(r.resource)) for r in records]
    request = encode_spans(spans)
    parsed = ExportTraceServiceRequest()
    for span in _from_otlp_json(otlp_json(request)):
        parsed.resource_spans.add().scope_spans.add().spans.append(span.span)
    original = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert [s for rs in parsed.resource_spans for ss in rs.scope_spans for s in ss.spans] == (
        original
    )
