"""Real OTLP receivers on loopback (traces, logs, metrics), built from opentelemetry-proto, that
fail on demand.

:class:`GrpcReceiver` serves ``TraceService``, ``LogsService`` and ``MetricsService`` ``Export``
over gRPC; :class:`HttpReceiver` serves ``POST /v1/traces``, ``/v1/logs`` and ``/v1/metrics``
(protobuf, optionally gzip/deflate). Both record every accepted request with its headers, and can
be switched to fail: ``"unavailable"`` (gRPC UNAVAILABLE / HTTP 503), ``"throttle"`` (gRPC
RESOURCE_EXHAUSTED / HTTP 429 with ``Retry-After: <retry_after>``), ``"hang"`` (never answer
until released) or ``"ok"``. Used by the OTel tests and the benches.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

Mode = Literal["ok", "unavailable", "throttle", "hang"]


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver got it, with its resource and plain attribute values."""

    span: Span
    resource: dict[str, Any]
    attributes: dict[str, Any]
    scope: str

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_span_id(self) -> str | None:
        return self.span.parent_span_id.hex() or None


@dataclass(frozen=True)
class ReceivedLog:
    """One log record as the receiver got it, with its resource and plain attribute values."""

    record: LogRecord
    resource: dict[str, Any]
    attributes: dict[str, Any]
    scope: str

    @property
    def trace_id(self) -> str:
        return self.record.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.record.span_id.hex()

    @property
    def body(self) -> str:
        return str(any_value(self.record.body))


@dataclass(frozen=True)
class ReceivedPoint:
    """One metric data point: its metric, kind (sum, gauge, histogram), value or histogram."""

    metric: str
    kind: str
    unit: str
    resource: dict[str, Any]
    attributes: dict[str, Any]
    start_ns: int
    time_ns: int
    value: float  # sums and gauges; a histogram's sum
    count: int = 0  # histograms
    buckets: tuple[int, ...] = ()
    temporality: int = 0  # 2: cumulative (sums and histograms)
    monotonic: bool = False


def flatten_logs(request: ExportLogsServiceRequest) -> Iterator[ReceivedLog]:
    for resource_logs in request.resource_logs:
        resource = {a.key: any_value(a.value) for a in resource_logs.resource.attributes}
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                yield ReceivedLog(
                    record=record,
                    resource=resource,
                    attributes={a.key: any_value(a.value) for a in record.attributes},
                    scope=scope_logs.scope.name,
                )


def flatten_metrics(request: ExportMetricsServiceRequest) -> Iterator[ReceivedPoint]:
    for resource_metrics in request.resource_metrics:
        resource = {a.key: any_value(a.value) for a in resource_metrics.resource.attributes}
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                data = getattr(metric, kind)
                for point in data.data_points:
                    attributes = {a.key: any_value(a.value) for a in point.attributes}
                    common = {
                        "metric": metric.name,
                        "kind": kind,
                        "unit": metric.unit,
                        "resource": resource,
                        "attributes": attributes,
                        "start_ns": point.start_time_unix_nano,
                        "time_ns": point.time_unix_nano,
                    }
                    if kind == "histogram":
                        yield ReceivedPoint(
                            **common,
                            value=point.sum,
                            count=point.count,
                            buckets=tuple(point.bucket_counts),
                            temporality=data.aggregation_temporality,
                        )
                    else:
                        number = point.WhichOneof("value")
                        yield ReceivedPoint(
                            **common,
                            value=getattr(point, number),
                            temporality=getattr(data, "aggregation_temporality", 0),
                            monotonic=getattr(data, "is_monotonic", False),
                        )


def flatten(request: ExportTraceServiceRequest) -> Iterator[ReceivedSpan]:
    for resource_spans in request.resource_spans:
        resource = {a.key: any_value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield ReceivedSpan(
                    span=span,
                    resource=resource,
                    attributes={a.key: any_value(a.value) for a in span.attributes},
                    scope=scope_spans.scope.name,
                )


@dataclass
class _Recorder:
    mode: Mode = "ok"
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    log_requests: list[ExportLogsServiceRequest] = field(default_factory=list)
    metric_requests: list[ExportMetricsServiceRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    attempts: int = 0
    # Requests refused per signal while failing on purpose ("traces", "logs", "metrics").
    refused: dict[str, int] = field(default_factory=dict)
    retry_after: str = "1"  # the Retry-After of "throttle" (HTTP)
    delay_s: float = 0.0  # HTTP: answer each request this much later (a slow backend)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list[ReceivedSpan]:
        with self.lock:
            requests = list(self.requests)
        return [span for request in requests for span in flatten(request)]

    def logs(self) -> list[ReceivedLog]:
        with self.lock:
            requests = list(self.log_requests)
        return [record for request in requests for record in flatten_logs(request)]

    def points(self) -> list[ReceivedPoint]:
        with self.lock:
            requests = list(self.metric_requests)
        return [point for request in requests for point in flatten_metrics(request)]

    def log_count(self) -> int:
        with self.lock:
            return sum(
                len(sl.log_records)
                for r in self.log_requests
                for rl in r.resource_logs
                for sl in rl.scope_logs
            )

    def _refuse(self, signal: str) -> None:
        with self.lock:
            self.refused[signal] = self.refused.get(signal, 0) + 1

    def span_count(self) -> int:
        with self.lock:
            return sum(
                len(ss.spans)
                for r in self.requests
                for rs in r.resource_spans
                for ss in rs.scope_spans
            )

    def fail(self, mode: Mode) -> None:
        self.mode = mode
        if mode == "hang":
            self.release.clear()
        else:
            self.release.set()

    def _record(self, request: Any, headers: dict[str, str]) -> None:
        with self.lock:
            if isinstance(request, ExportLogsServiceRequest):
                self.log_requests.append(request)
            elif isinstance(request, ExportMetricsServiceRequest):
                self.metric_requests.append(request)
            else:
                self.requests.append(request)
            self.headers.append(headers)


class GrpcReceiver(_Recorder):
    """An OTLP/gRPC receiver (trace, logs and metrics services) on 127.0.0.1."""

    def __init__(
        self,
        port: int = 0,
        mode: Mode = "ok",
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        super().__init__(mode=mode)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Servicer(self), self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsServicer(self), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _MetricsServicer(self), self._server
        )
        address = f"127.0.0.1:{port}"
        if credentials is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, credentials)
        self.endpoint = f"127.0.0.1:{self.port}"
        self.fail(mode)

    def __enter__(self) -> GrpcReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.stop(grace=None).wait()


def _grpc_export(
    recorder: GrpcReceiver, signal: str, request: Any, context: grpc.ServicerContext
) -> None:
    with recorder.lock:
        recorder.attempts += 1
    if recorder.mode == "hang":
        # A hung request never succeeds: released, it fails (nothing recorded).
        recorder.release.wait(timeout=60)
        recorder._refuse(signal)
        context.abort(grpc.StatusCode.UNAVAILABLE, "hung on purpose")
    if recorder.mode == "unavailable":
        recorder._refuse(signal)
        context.abort(grpc.StatusCode.UNAVAILABLE, "down on purpose")
    if recorder.mode == "throttle":
        recorder._refuse(signal)
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "throttled on purpose")
    recorder._record(request, {k: v for k, v in context.invocation_metadata()})


class _Servicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, recorder: GrpcReceiver) -> None:
        self._recorder = recorder

    def Export(
        self, request: ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        _grpc_export(self._recorder, "traces", request, context)
        return trace_service_pb2.ExportTraceServiceResponse()


class _LogsServicer(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, recorder: GrpcReceiver) -> None:
        self._recorder = recorder

    def Export(
        self, request: ExportLogsServiceRequest, context: grpc.ServicerContext
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        _grpc_export(self._recorder, "logs", request, context)
        return logs_service_pb2.ExportLogsServiceResponse()


class _MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, recorder: GrpcReceiver) -> None:
        self._recorder = recorder

    def Export(
        self, request: ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        _grpc_export(self._recorder, "metrics", request, context)
        return metrics_service_pb2.ExportMetricsServiceResponse()


_HTTP_SIGNALS: dict[str, tuple[str, type[Any], Any]] = {
    "/v1/traces": (
        "traces",
        ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    "/v1/logs": ("logs", ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
    "/v1/metrics": (
        "metrics",
        ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
}


class HttpReceiver(_Recorder):
    """An OTLP/HTTP receiver (``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics``, protobuf) on
    127.0.0.1."""

    def __init__(self, port: int = 0, mode: Mode = "ok") -> None:
        super().__init__(mode=mode)
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with recorder.lock:
                    recorder.attempts += 1
                if recorder.delay_s:
                    time.sleep(recorder.delay_s)
                signal = _HTTP_SIGNALS.get(self.path)
                if recorder.mode == "hang":
                    # A hung request never succeeds: released, it fails (nothing recorded).
                    recorder.release.wait(timeout=60)
                    recorder._refuse(signal[0] if signal else self.path)
                    self._answer(503, b"hung on purpose")
                    return
                if signal is None:
                    self._answer(404, b"not found")
                    return
                name, request_type, response_type = signal
                if recorder.mode == "unavailable":
                    recorder._refuse(name)
                    self._answer(503, b"down on purpose")
                    return
                if recorder.mode == "throttle":
                    recorder._refuse(name)
                    self._answer(429, b"slow down", retry_after=recorder.retry_after)
                    return
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request = request_type()
                request.ParseFromString(body)
                recorder._record(request, {k.lower(): v for k, v in self.headers.items()})
                response = response_type().SerializeToString()
                self._answer(200, response, "application/x-protobuf")

            def _answer(
                self,
                code: int,
                body: bytes,
                kind: str = "text/plain",
                retry_after: str | None = None,
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.fail(mode)

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
