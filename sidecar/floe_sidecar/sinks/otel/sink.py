"""The trace sink: span records in, one blocking OTLP export per batch, success or raise.

No ``BatchSpanProcessor``: its queue drops spans when full and swallows export failures. The
engine hands this sink batches from its durable spool and moves the sink's cursor only when
:meth:`TraceSink.deliver` returns, so a batch the endpoint did not accept is retried (by the
engine, with its backoff) and never lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Final

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event as SdkEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from floe_core.errors import TraceExportError
from floe_core.events import Event
from floe_core.layout import TRACES_SINK
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.base import Rejection
from floe_sidecar.sinks.otel.config import FileExport, TraceConfig, resolve_trace_config
from floe_sidecar.sinks.otel.exporters import build_exporter
from floe_sidecar.sinks.otel.translate import SpanRecord, SpanTranslator

__all__ = ["TraceExportError", "TraceSink", "build_trace_sink", "to_readable_span"]


try:
    _FLOE_VERSION: str | None = version("floe")
except PackageNotFoundError:
    _FLOE_VERSION = None
SCOPE: Final = InstrumentationScope("floe_sidecar.otel", _FLOE_VERSION)

_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_KINDS: Final = {"internal": SpanKind.INTERNAL, "server": SpanKind.SERVER}
_STATUS: Final = {"unset": StatusCode.UNSET, "ok": StatusCode.OK, "error": StatusCode.ERROR}


def build_trace_sink(settings: SidecarSettings) -> TraceSink | None:
    """The trace sink the settings ask for, or ``None`` when traces are off.

    Raises :class:`~floe_sidecar.sinks.otel.config.TraceConfigError` for unusable settings.
    """
    config = resolve_trace_config(settings)
    if config is None:
        return None
    return TraceSink(config)


class _ResourceCache:
    """SDK Resources by attribute set: spans sharing one are grouped in one ResourceSpans."""

    _LIMIT = 256

    def __init__(self) -> None:
        self._by_items: dict[tuple[tuple[str, str], ...], Resource] = {}

    def get(self, attributes: Mapping[str, str]) -> Resource:
        key = tuple(sorted(attributes.items()))
        resource = self._by_items.get(key)
        if resource is None:
            if len(self._by_items) >= self._LIMIT:
                self._by_items.clear()
            # The plain constructor: no detectors, no environment, exactly these attributes.
            resource = self._by_items[key] = Resource(dict(key))
        return resource


def to_readable_span(record: SpanRecord, resource: Resource) -> ReadableSpan:
    """The SDK's plain span data for one record, with the record's own ids and times."""
    trace_id = int(record.trace_id, 16)
    context = SpanContext(trace_id, int(record.span_id, 16), is_remote=False, trace_flags=_SAMPLED)
    parent = None
    if record.parent_span_id is not None:
        parent = SpanContext(
            trace_id, int(record.parent_span_id, 16), is_remote=False, trace_flags=_SAMPLED
        )
    code = _STATUS[record.status]
    status = Status(code, record.status_message if code is StatusCode.ERROR else None)
    return ReadableSpan(
        name=record.name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=record.attributes,
        events=[SdkEvent(e.name, e.attributes, e.time_ns) for e in record.events],
        kind=_KINDS[record.kind],
        status=status,
        start_time=record.start_ns,
        end_time=record.end_ns,
        instrumentation_scope=SCOPE,
    )


class _LastExportError(logging.Handler):
    """Keeps what an exporter last complained about on this thread, so a retry says why.

    The final error alone can be vague ("max retries"), so the last warning before it (the
    transient error with its status) is kept too.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        slot = "error" if record.levelno >= logging.ERROR else "warning"
        setattr(self._local, slot, record.getMessage())

    def take(self) -> str | None:
        error: str | None = getattr(self._local, "error", None)
        warning: str | None = getattr(self._local, "warning", None)
        self._local.error = self._local.warning = None
        if error and warning:
            return f"{error} (last attempt: {warning})"
        return error or warning


_last_error = _LastExportError()
for _name in ("opentelemetry.exporter", "floe_sidecar.sinks.otel.exporters"):
    logging.getLogger(_name).addHandler(_last_error)


class TraceSink:
    """Sink protocol implementation for OpenTelemetry traces (see ``sinks/base.py``)."""

    name: str = TRACES_SINK

    def __init__(self, config: TraceConfig, exporter: SpanExporter | None = None) -> None:
        self.config = config
        self.max_batch = config.max_batch
        self._translator = SpanTranslator(config.resource)
        self._exporter = exporter if exporter is not None else build_exporter(config)
        self._resources = _ResourceCache()
        self._lock = threading.Lock()
        export = config.export
        self.destination = (
            str(export.path) if isinstance(export, FileExport) else export.display_endpoint
        )

    def translate(self, event: Event) -> Sequence[SpanRecord]:
        return self._translator.translate(event)

    def deliver(self, batch: Sequence[SpanRecord]) -> Sequence[Rejection]:
        """Export the whole batch in one request; raise unless the endpoint accepted it."""
        if not batch:
            return ()
        spans = [to_readable_span(r, self._resources.get(r.resource)) for r in batch]
        with self._lock:
            _last_error.take()
            result = self._exporter.export(spans)
            reason = _last_error.take()
        if result is not SpanExportResult.SUCCESS:
            raise TraceExportError(
                f"exporting {len(spans)} spans to {self.destination} failed: "
                f"{reason or 'the exporter reported a failure'}"
            )
        return ()

    def close(self) -> None:
        self._exporter.shutdown()
