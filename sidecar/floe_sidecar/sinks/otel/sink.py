"""The trace sink: span records in, one blocking OTLP export per batch, success or raise.

No ``BatchSpanProcessor``: its queue drops spans when full and swallows export failures. The
engine hands this sink batches from its durable spool and moves the sink's cursor only when
:meth:`TraceSink.deliver` returns, so a batch the endpoint did not accept is retried (by the
engine, with its backoff) and never lost.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Final

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event as SdkEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from floe_core.errors import TraceExportError
from floe_core.events import Event
from floe_core.layout import TRACES_SINK
from floe_sidecar.settings import SidecarSettings
from floe_sidecar.sinks.base import Rejection
from floe_sidecar.sinks.otel.config import SignalConfig, resolve_trace_config
from floe_sidecar.sinks.otel.delivery import SCOPE, ResourceCache, destination, export_or_raise
from floe_sidecar.sinks.otel.exporters import Throttle, build_exporter
from floe_sidecar.sinks.otel.translate import SpanRecord, SpanTranslator

__all__ = ["SCOPE", "TraceExportError", "TraceSink", "build_trace_sink", "to_readable_span"]


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


class TraceSink:
    """Sink protocol implementation for OpenTelemetry traces (see ``sinks/base.py``)."""

    name: str = TRACES_SINK

    def __init__(self, config: SignalConfig, exporter: SpanExporter | None = None) -> None:
        self.config = config
        self.max_batch = config.max_batch
        self._translator = SpanTranslator(config.resource)
        self._throttle = Throttle() if exporter is None else None
        self._exporter = (
            exporter if exporter is not None else build_exporter(config, self._throttle)
        )
        self._resources = ResourceCache()
        self._lock = threading.Lock()
        self.destination = destination(config)

    def translate(self, event: Event) -> Sequence[SpanRecord]:
        return self._translator.translate(event)

    def deliver(self, batch: Sequence[SpanRecord]) -> Sequence[Rejection]:
        """Export the whole batch in one request; raise unless the endpoint accepted it."""
        if not batch:
            return ()
        spans = [to_readable_span(r, self._resources.get(r.resource)) for r in batch]
        export_or_raise(
            self._exporter,
            spans,
            lock=self._lock,
            throttle=self._throttle,
            describe=f"{len(spans)} spans to {self.destination}",
            error=TraceExportError,
        )
        return ()

    def close(self) -> None:
        self._exporter.shutdown()
