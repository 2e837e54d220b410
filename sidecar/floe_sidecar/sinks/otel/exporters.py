"""The span exporters behind the trace sink: OTLP gRPC, OTLP HTTP/protobuf, OTLP/JSON lines file.

Every setting is passed to the SDK exporters explicitly, from the resolved :class:`TraceConfig`,
so what the sidecar was configured with is what it uses (the SDK exporters would otherwise read
some variables from the process environment themselves, with other units). Creating an OTLP
exporter opens no connection; the first export does.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from floe_core.fsutil import append_lines
from floe_sidecar.sinks.otel.config import FileExport, OtlpExport, TraceConfig

__all__ = ["OtlpJsonLinesExporter", "build_exporter", "otlp_json"]

logger = logging.getLogger(__name__)

_GRPC_COMPRESSION = {"none": grpc.Compression.NoCompression, "gzip": grpc.Compression.Gzip}
_HTTP_COMPRESSION = {
    "none": HttpCompression.NoCompression,
    "gzip": HttpCompression.Gzip,
    "deflate": HttpCompression.Deflate,
}


def build_exporter(config: TraceConfig) -> SpanExporter:
    """The exporter a trace configuration asks for."""
    export = config.export
    if isinstance(export, FileExport):
        return OtlpJsonLinesExporter(export.path)
    if export.protocol == "grpc":
        return _grpc_exporter(export)
    return _http_exporter(export)


def _grpc_exporter(export: OtlpExport) -> GrpcSpanExporter:
    credentials = None
    if not export.insecure:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(export.certificate_file),
            private_key=_read(export.client_key_file),
            certificate_chain=_read(export.client_certificate_file),
        )
    return GrpcSpanExporter(
        endpoint=export.endpoint,
        insecure=export.insecure,
        credentials=credentials,
        headers=dict(export.headers) or None,
        timeout=export.timeout_s,
        compression=_GRPC_COMPRESSION[export.compression],
    )


def _http_exporter(export: OtlpExport) -> HttpSpanExporter:
    return HttpSpanExporter(
        endpoint=export.endpoint,
        certificate_file=export.certificate_file,
        client_key_file=export.client_key_file,
        client_certificate_file=export.client_certificate_file,
        headers=dict(export.headers),
        timeout=export.timeout_s,
        compression=_HTTP_COMPRESSION[export.compression],
    )


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def otlp_json(request: ExportTraceServiceRequest) -> str:
    """The OTLP/JSON encoding of a request, on one line.

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
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


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

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        line = otlp_json(encode_spans(spans)) + "\n"
        try:
            append_lines(self.path, line.encode())
        except OSError as exc:
            logger.error("cannot write traces to %s: %s", self.path, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing is held open between batches."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
