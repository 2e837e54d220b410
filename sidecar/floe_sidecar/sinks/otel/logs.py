"""Log lines in, log records out: pure and deterministic, and where log attribute names live.

Each ``log`` event (a line of dbt's log, or a record of floe's adapter) becomes one OTLP
LogRecord in the trace of its Dagster run (trace id from the run id, ``floe_core.ids``), under
the span the adapter named (the node's, else the invocation's, else the run's), so a span's logs
are one click away in any backend. Other events produce no records.

- timestamp: when the line was written (dbt's ``ts``); observed timestamp: when the adapter
  read it;
- severity: dbt's level, as the OTel severity numbers (DEBUG 5, INFO 9, WARN 13, ERROR 17,
  FATAL 21) and texts;
- body: the message (ANSI colours removed, credentials redacted by the adapter);
- attributes: ``log.record.uid`` (the event id: the same line delivered twice has the same uid,
  as the semantic conventions intend for de-duplication), ``cicd.pipeline.name`` and
  ``cicd.pipeline.run.id`` (as on the spans), ``floe.log.source`` (``dbt`` or ``floe``), dbt's
  ``dbt.event.name`` / ``dbt.event.code`` / ``dbt.invocation_id`` / ``dbt.unique_id``, and the
  line's fields: ``thread.name``, ``dbt.data.<key>``, ``dbt.node_info.<key>``,
  ``dbt.extra.<name>``, ``exception.type`` / ``.message`` / ``.stacktrace`` for a floe record
  with an exception, ``floe.<key>`` for the rest of a floe record's fields, ``floe.logger``;
- resource: the same as the spans' (service, ``OTEL_RESOURCE_ATTRIBUTES``, the tenant
  attributes, ``deployment.environment.name``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from floe_core import ids
from floe_core.events import Event, LogLine
from floe_sidecar.sinks.otel.translate import ENVIRONMENT_ATTRIBUTE, AttributeValue, to_unix_nanos

__all__ = ["SEVERITY", "LogItem", "LogTranslator"]

#: Log level -> (OTel severity number, severity text).
SEVERITY: Final[dict[str, tuple[int, str]]] = {
    "debug": (5, "DEBUG"),
    "info": (9, "INFO"),
    "warn": (13, "WARN"),
    "error": (17, "ERROR"),
    "fatal": (21, "FATAL"),
}
_FIELD_PREFIXES: Final = (
    ("data.", "dbt.data."),
    ("node_info.", "dbt.node_info."),
    ("extra.", "dbt.extra."),
)


class LogItem(msgspec.Struct, frozen=True, kw_only=True):
    """One log record as plain data; the sink turns it into the SDK's log record."""

    time_ns: int
    observed_ns: int
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    severity_number: int
    severity_text: str
    body: str
    attributes: dict[str, AttributeValue] = {}
    resource: dict[str, str] = {}


def _field_name(source: str, key: str) -> str:
    if key == "thread":
        return "thread.name"
    if key.startswith("exception."):
        return key
    if source == "dbt":
        for prefix, name in _FIELD_PREFIXES:
            if key.startswith(prefix):
                return name + key[len(prefix) :]
        return f"dbt.{key}"
    return f"floe.{key}"


class LogTranslator:
    """Turns a ``log`` event into its log record; ``base_resource`` as for spans."""

    def __init__(self, base_resource: Mapping[str, str]) -> None:
        self._base_resource = dict(base_resource)

    def translate(self, event: Event) -> tuple[LogItem, ...]:
        if not isinstance(event, LogLine):
            return ()
        return (self.record(event),)

    def record(self, line: LogLine) -> LogItem:
        number, text = SEVERITY.get(line.level, SEVERITY["info"])
        attributes: dict[str, AttributeValue] = {
            "log.record.uid": line.event_id,
            "cicd.pipeline.name": line.run.job_name,
            "cicd.pipeline.run.id": line.run.run_id,
            "floe.log.source": line.source,
        }
        if line.source == "dbt":
            if line.name:
                attributes["dbt.event.name"] = line.name
            if line.code:
                attributes["dbt.event.code"] = line.code
        elif line.name:
            attributes["floe.logger"] = line.name
        if line.invocation_id:
            attributes["dbt.invocation_id"] = line.invocation_id
        if line.unique_id:
            attributes["dbt.unique_id"] = line.unique_id
        for key in sorted(line.fields):
            attributes.setdefault(_field_name(line.source, key), line.fields[key])
        resource = dict(self._base_resource)
        resource.update(line.attributes)
        if line.environment:
            resource[ENVIRONMENT_ATTRIBUTE] = line.environment
        return LogItem(
            time_ns=to_unix_nanos(line.at),
            observed_ns=to_unix_nanos(line.emitted_at),
            trace_id=ids.trace_id_hex(line.run.run_id),
            span_id=line.span_id,
            severity_number=number,
            severity_text=text,
            body=line.message,
            attributes=attributes,
            resource=resource,
        )
