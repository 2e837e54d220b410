"""The logs sink: log records in, one blocking OTLP export per batch, success or raise.

The engine hands it batches from its durable spool and moves its cursor only when
:meth:`LogSink.deliver` returns; a batch the endpoint did not take is retried (with the engine's
backoff, or after the endpoint's ``Retry-After``) and never lost. No ``BatchLogRecordProcessor``:
it drops records when its queue is full and ignores export failures.

The SDK's logs data model is still marked experimental (``opentelemetry.sdk._logs``) and has
changed shape: since 1.39 exporters take ``ReadableLogRecord`` (an API ``LogRecord`` plus the
resource), before that ``LogData`` (an SDK ``LogRecord`` holding its resource). :func:`sdk_record`
builds whichever the installed SDK has, found by feature rather than by version number.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Final

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from floe_core.errors import OtlpExportError
from floe_core.events import Event
from floe_core.layout import LOGS_SINK
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.base import Rejection
from floe_sidecar.sinks.otel.config import FileExport, SignalConfig, resolve_signal_config
from floe_sidecar.sinks.otel.delivery import SCOPE, ResourceCache, destination, export_or_raise
from floe_sidecar.sinks.otel.exporters import (
    Exporter,
    JsonLinesFile,
    Throttle,
    grpc_compression,
    grpc_credentials,
    http_compression,
)
from floe_sidecar.sinks.otel.logs import LogItem, LogTranslator

__all__ = ["LogSink", "build_log_sink", "sdk_record"]

_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)

try:  # opentelemetry-sdk >= 1.39
    from opentelemetry._logs import LogRecord as _ApiLogRecord
    from opentelemetry.sdk._logs import ReadableLogRecord as _ReadableLogRecord

    _READABLE = True
except ImportError:  # older SDKs: LogData around an SDK LogRecord
    _READABLE = False


def sdk_record(item: LogItem, resource: Resource) -> Any:
    """The installed SDK's exportable log record for one item, with the item's ids and times."""
    context = trace.set_span_in_context(
        NonRecordingSpan(
            SpanContext(
                int(item.trace_id, 16),
                int(item.span_id, 16),
                is_remote=False,
                trace_flags=_SAMPLED,
            )
        )
    )
    fields: dict[str, Any] = {
        "timestamp": item.time_ns,
        "observed_timestamp": item.observed_ns,
        "context": context,
        "severity_text": item.severity_text,
        "severity_number": SeverityNumber(item.severity_number),
        "body": item.body,
        "attributes": dict(item.attributes),
    }
    if _READABLE:
        return _ReadableLogRecord(
            log_record=_ApiLogRecord(**fields), resource=resource, instrumentation_scope=SCOPE
        )
    import opentelemetry.sdk._logs as sdk_logs

    record = sdk_logs.LogRecord(resource=resource, **fields)  # type: ignore[attr-defined]
    return sdk_logs.LogData(log_record=record, instrumentation_scope=SCOPE)  # type: ignore[attr-defined]


class _FileLogExporter:
    """OTLP/JSON lines, one ExportLogsServiceRequest per line (the embedded default)."""

    def __init__(self, file: JsonLinesFile) -> None:
        self._file = file

    def export(self, batch: Sequence[Any]) -> bool:
        return self._file.append(encode_logs(batch))

    def shutdown(self) -> None:
        """Nothing is held open between batches."""


def build_log_exporter(config: SignalConfig, throttle: Throttle | None = None) -> Exporter:
    """The log exporter a configuration asks for."""
    export = config.export
    if isinstance(export, FileExport):
        return _FileLogExporter(JsonLinesFile(export.path))
    if export.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
            OTLPLogExporter as GrpcLogExporter,
        )

        exporter: Exporter = GrpcLogExporter(
            endpoint=export.endpoint,
            insecure=export.insecure,
            credentials=grpc_credentials(export),
            headers=dict(export.headers) or None,
            timeout=export.timeout_s,
            compression=grpc_compression(export),
        )
        return exporter
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (
        OTLPLogExporter as HttpLogExporter,
    )

    return HttpLogExporter(
        endpoint=export.endpoint,
        certificate_file=export.certificate_file,
        client_key_file=export.client_key_file,
        client_certificate_file=export.client_certificate_file,
        headers=dict(export.headers),
        timeout=export.timeout_s,
        compression=http_compression(export),
        session=throttle.session() if throttle is not None else None,
    )


def build_log_sink(settings: SidecarSettings) -> LogSink | None:
    """The logs sink the settings ask for, or ``None`` when logs are off."""
    config = resolve_signal_config(settings, "logs")
    if config is None:
        return None
    return LogSink(config)


class LogSink:
    """Sink protocol implementation for OpenTelemetry logs (see ``sinks/base.py``)."""

    name: str = LOGS_SINK

    def __init__(self, config: SignalConfig, exporter: Exporter | None = None) -> None:
        self.config = config
        self.max_batch = config.max_batch
        self._translator = LogTranslator(config.resource)
        self._throttle = Throttle() if exporter is None else None
        self._exporter = exporter or build_log_exporter(config, self._throttle)
        self._resources = ResourceCache()
        self._lock = threading.Lock()
        self.destination = destination(config)

    def translate(self, event: Event) -> Sequence[LogItem]:
        return self._translator.translate(event)

    def deliver(self, batch: Sequence[LogItem]) -> Sequence[Rejection]:
        """Export the whole batch in one request; raise unless the endpoint accepted it."""
        if not batch:
            return ()
        records = [sdk_record(item, self._resources.get(item.resource)) for item in batch]
        export_or_raise(
            self._exporter,
            records,
            lock=self._lock,
            throttle=self._throttle,
            describe=f"{len(records)} log records to {self.destination}",
            error=OtlpExportError,
        )
        return ()

    def close(self) -> None:
        self._exporter.shutdown()
