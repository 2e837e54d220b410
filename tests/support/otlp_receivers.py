"""Real OTLP trace receivers on loopback, built from opentelemetry-proto, that fail on demand.

:class:`GrpcReceiver` serves ``TraceService/Export`` over gRPC; :class:`HttpReceiver` serves
``POST /v1/traces`` (protobuf, optionally gzip/deflate). Both record every accepted request with
its headers, and can be switched to fail: ``"unavailable"`` (gRPC UNAVAILABLE / HTTP 503),
``"hang"`` (never answer until released) or ``"ok"``. Used by the trace tests and the bench.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

Mode = Literal["ok", "unavailable", "hang"]


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
    headers: list[dict[str, str]] = field(default_factory=list)
    attempts: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list[ReceivedSpan]:
        with self.lock:
            requests = list(self.requests)
        return [span for request in requests for span in flatten(request)]

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

    def _record(self, request: ExportTraceServiceRequest, headers: dict[str, str]) -> None:
        with self.lock:
            self.requests.append(request)
            self.headers.append(headers)


class GrpcReceiver(_Recorder):
    """An OTLP/gRPC trace receiver (``TraceServiceServicer``) on 127.0.0.1."""

    def __init__(
        self,
        port: int = 0,
        mode: Mode = "ok",
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        super().__init__(mode=mode)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Servicer(self), self._server)
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


class _Servicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, recorder: GrpcReceiver) -> None:
        self._recorder = recorder

    def Export(
        self, request: ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        recorder = self._recorder
        with recorder.lock:
            recorder.attempts += 1
        if recorder.mode == "hang":
            # A hung request never succeeds: released, it fails (nothing recorded).
            recorder.release.wait(timeout=60)
            context.abort(grpc.StatusCode.UNAVAILABLE, "hung on purpose")
        if recorder.mode == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "down on purpose")
        recorder._record(request, {k: v for k, v in context.invocation_metadata()})
        return trace_service_pb2.ExportTraceServiceResponse()


class HttpReceiver(_Recorder):
    """An OTLP/HTTP trace receiver (``POST /v1/traces``, protobuf) on 127.0.0.1."""

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
                if recorder.mode == "hang":
                    # A hung request never succeeds: released, it fails (nothing recorded).
                    recorder.release.wait(timeout=60)
                    self._answer(503, b"hung on purpose")
                    return
                if self.path != "/v1/traces":
                    self._answer(404, b"not found")
                    return
                if recorder.mode == "unavailable":
                    self._answer(503, b"down on purpose")
                    return
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                recorder._record(request, {k.lower(): v for k, v in self.headers.items()})
                response = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self._answer(200, response, "application/x-protobuf")

            def _answer(self, code: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
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
