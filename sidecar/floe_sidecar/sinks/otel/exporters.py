"""The exporters behind the OTel sinks: OTLP gRPC, OTLP HTTP/protobuf, OTLP/JSON lines file, for
spans, log records and metrics.

Every setting is passed to the SDK exporters explicitly, from the resolved :class:`SignalConfig`,
so what the sidecar was configured with is what it uses (the SDK exporters would otherwise read
some variables from the process environment themselves, with other units). Creating an OTLP
exporter opens no connection; the first export does.

Over HTTP, each exporter gets a ``requests`` session of its own (the exporters' public
``session`` argument) whose response hook remembers, per thread, the last status and
``Retry-After``: when an export fails on a 429 or 503 that said when to come back, the sink raises
:class:`~floe_core.errors.ThrottledError` and the engine waits that long.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from floe_core.fsutil import append_lines
from floe_sidecar.engine.retry import THROTTLE_STATUSES, parse_retry_after
from floe_sidecar.sinks.otel.config import FileExport, OtlpExport, SignalConfig

if TYPE_CHECKING:
    import requests

__all__ = [
    "Exporter",
    "JsonLinesFile",
    "OtlpJsonLinesExporter",
    "Throttle",
    "build_exporter",
    "grpc_compression",
    "grpc_credentials",
    "http_compression",
    "otlp_json",
]

logger = logging.getLogger(__name__)

_GRPC_COMPRESSION = {"none": grpc.Compression.NoCompression, "gzip": grpc.Compression.Gzip}
_HTTP_COMPRESSION = {
    "none": HttpCompression.NoCompression,
    "gzip": HttpCompression.Gzip,
    "deflate": HttpCompression.Deflate,
}


class Exporter(Protocol):
    """What the OTel sinks call: one of the SDK's exporters, or a JSON lines file."""

    def export(self, batch: Any, /) -> Any: ...

    def shutdown(self) -> None: ...


class Throttle:
    """The last HTTP answer an exporter got on this thread: (status, Retry-After in seconds).

    A ``requests`` response hook, installed on the session handed to an SDK HTTP exporter; the
    sink reads it after a failed export (:meth:`take`) to tell a throttled endpoint from a
    broken one.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def session(self) -> requests.Session:
        # Imported here: importing requests (urllib3) probes IPv6 with a socket, and a sidecar
        # that exports nothing over HTTP opens no socket at all.
        import requests

        session = requests.Session()
        session.hooks["response"].append(self._record)
        return session

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        retry_after = None
        if response.status_code in THROTTLE_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        self._local.last = (response.status_code, retry_after)

    def clear(self) -> None:
        self._local.last = None

    def take(self) -> tuple[int, float | None] | None:
        last: tuple[int, float | None] | None = getattr(self._local, "last", None)
        self._local.last = None
        return last


def build_exporter(config: SignalConfig, throttle: Throttle | None = None) -> SpanExporter:
    """The span exporter a trace configuration asks for."""
    export = config.export
    if isinstance(export, FileExport):
        return OtlpJsonLinesExporter(export.path)
    if export.protocol == "grpc":
        return GrpcSpanExporter(
            endpoint=export.endpoint,
            insecure=export.insecure,
            credentials=grpc_credentials(export),
            headers=dict(export.headers) or None,
            timeout=export.timeout_s,
            compression=_GRPC_COMPRESSION[export.compression],
        )
    return HttpSpanExporter(
        endpoint=export.endpoint,
        certificate_file=export.certificate_file,
        client_key_file=export.client_key_file,
        client_certificate_file=export.client_certificate_file,
        headers=dict(export.headers),
        timeout=export.timeout_s,
        compression=http_compression(export),
        session=throttle.session() if throttle is not None else None,
    )


def grpc_credentials(export: OtlpExport) -> grpc.ChannelCredentials | None:
    """TLS credentials for a gRPC exporter (None: plaintext)."""
    if export.insecure:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(export.certificate_file),
        private_key=_read(export.client_key_file),
        certificate_chain=_read(export.client_certificate_file),
    )


def grpc_compression(export: OtlpExport) -> grpc.Compression:
    return _GRPC_COMPRESSION[export.compression]


def http_compression(export: OtlpExport) -> HttpCompression:
    return _HTTP_COMPRESSION[export.compression]


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def otlp_json(request: Message) -> str:
    """The OTLP/JSON encoding of an export request (spans, logs or metrics), on one line.

    OTLP/JSON is protobuf's JSON mapping with two changes: trace and span ids are hex strings
    (not base64) and enums are integers. This is what the OpenTelemetry Collector's file
    exporter writes and its OTLP/JSON receivers read.
    """
    data = MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in data.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                _hex_ids(span)
                for link in span.get("links", ()):
                    _hex_ids(link)
    for resource_logs in data.get("resourceLogs", ()):
        for scope_logs in resource_logs.get("scopeLogs", ()):
            for record in scope_logs.get("logRecords", ()):
                _hex_ids(record)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class JsonLinesFile:
    """Appends export requests as OTLP/JSON lines, fsynced, to one owner-only file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, request: Message) -> bool:
        line = otlp_json(request) + "\n"
        try:
            append_lines(self.path, line.encode())
        except OSError as exc:
            logger.error("cannot write to %s: %s", self.path, exc)
            return False
        return True


def _hex_ids(message: dict[str, Any]) -> None:
    for key in _ID_FIELDS:
        value = message.get(key)
        if value:
            message[key] = base64.b64decode(value).hex()


class OtlpJsonLinesExporter(SpanExporter):
    """Appends each batch as one OTLP/JSON ``ExportTraceServiceRequest`` line, fsynced.

    The embedded default when traces are on but no endpoint is configured: the file can be
    replayed into any collector later (``otlpjsonfile`` receiver). Created owner-only.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = JsonLinesFile(path)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._file.append(encode_spans(spans)):
            return SpanExportResult.SUCCESS
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        """Nothing is held open between batches."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
