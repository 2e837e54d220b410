"""OpenTelemetry traces from floe events: a span per Dagster run, dbt invocation and dbt node.

``translate`` (pure: event in, span records out), ``config`` (what the settings and the
standard ``OTEL_*`` variables ask for), ``exporters`` (OTLP gRPC / HTTP, OTLP/JSON lines file)
and ``sink`` (the engine's entry point: :func:`build_trace_sink`).
"""

from floe_sidecar.sinks.otel.config import TraceConfig, TraceConfigError, resolve_trace_config
from floe_sidecar.sinks.otel.sink import TraceExportError, TraceSink, build_trace_sink
from floe_sidecar.sinks.otel.translate import SpanEvent, SpanRecord, SpanTranslator

__all__ = [
    "SpanEvent",
    "SpanRecord",
    "SpanTranslator",
    "TraceConfig",
    "TraceConfigError",
    "TraceExportError",
    "TraceSink",
    "build_trace_sink",
    "resolve_trace_config",
]
