"""Log lines as events: dbt's own log lines and floe's adapter log records -> ``LogLine``.

What gets through, and how much:

- **Severity**: a line at or above ``observability.log_level`` (``info`` by default: dbt's debug
  lines, hundreds per node, stay out). dbt's levels are ``debug``, ``info``, ``warn``, ``error``
  (its ``test`` level counts as debug); floe's records map ``WARNING`` to ``warn`` and
  ``CRITICAL`` to ``fatal``. Lines with an empty message (dbt's spacing lines) are left out.
- **Volume**: at most :data:`MAX_RECORDS_BELOW_WARN` lines below ``warn`` per step; past that
  they are counted, and one ``warn`` line at the end says how many were left out. Warnings and
  errors always get through. A message is cut at ``MAX_LOG_MESSAGE_CHARS``, a field value at
  :data:`MAX_FIELD_CHARS`, and a line keeps at most :data:`MAX_FIELDS` fields.
- **Secrets**: every message and string field goes through the step's
  :class:`~floe_core.redaction.Redactor` first (warehouse credentials, OTLP headers, API keys,
  passwords in URLs). Of dbt's ``data`` only scalar values are kept, never the nested structures
  (``args`` and its ``--vars``).

Each line names the span it belongs to (``floe_core.ids``, as the spans themselves): the dbt
node's when the line carries a ``node_info`` of a node with a span, else the dbt invocation's,
else the Dagster run's; floe's records name the span of the code that logged them.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from floe_core import ids
from floe_core.artifacts import ObservabilityArtifacts
from floe_core.events import (
    LOG_LEVELS,
    MAX_LOG_MESSAGE_CHARS,
    DagsterRun,
    LogLine,
    LogValue,
)
from floe_core.redaction import Redactor

__all__ = [
    "MAX_FIELDS",
    "MAX_FIELD_CHARS",
    "MAX_RECORDS_BELOW_WARN",
    "LogBudget",
    "LogRecordForwarder",
    "dbt_level",
    "dbt_log_fields",
    "export_level",
    "level_at_least",
    "python_level",
]

MAX_RECORDS_BELOW_WARN = 100_000
MAX_FIELD_CHARS = 1024
MAX_FIELDS = 64
_RANK = {level: rank for rank, level in enumerate(LOG_LEVELS)}
_TRUNCATED = " [floe: truncated]"
# dbt's node_info keys worth a field (the rest are checksums and the node's whole meta).
_NODE_INFO_FIELDS = (
    "unique_id",
    "node_name",
    "resource_type",
    "materialized",
    "node_status",
    "node_path",
    "node_started_at",
    "node_finished_at",
)


def export_level(observability: ObservabilityArtifacts, environ: Mapping[str, str]) -> str | None:
    """The lowest level of the log lines to export, or None when logs are off: off in floe.yaml,
    or switched off the OpenTelemetry way (``OTEL_LOGS_EXPORTER=none``, ``OTEL_SDK_DISABLED``)."""
    if not observability.logs:
        return None
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if environ.get("OTEL_LOGS_EXPORTER", "").strip().lower() == "none":
        return None
    return observability.log_level


def level_at_least(level: str, minimum: str) -> bool:
    return _RANK.get(level, _RANK["info"]) >= _RANK.get(minimum, _RANK["info"])


def dbt_level(info: Mapping[str, Any]) -> str:
    """dbt's ``info.level`` as one of ``LOG_LEVELS``."""
    level = str(info.get("level") or "info").lower()
    if level in _RANK:
        return level
    if level == "warning":
        return "warn"
    return "debug" if level == "test" else "info"


def python_level(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "fatal"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    return "info" if levelno >= logging.INFO else "debug"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + _TRUNCATED


def _scalar(value: object, redactor: Redactor) -> LogValue | None:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return clip(redactor.redact(value), MAX_FIELD_CHARS) if value else None
    return None


def dbt_log_fields(
    info: Mapping[str, Any], data: Mapping[str, Any], redactor: Redactor
) -> dict[str, LogValue]:
    """dbt's fields worth keeping, flattened: ``data.<key>`` (scalars only), ``node_info.<key>``,
    ``extra.<name>`` (``DBT_ENV_CUSTOM_ENV_<name>``, floe's own ids left out) and ``thread``."""
    fields: dict[str, LogValue] = {}
    thread = _scalar(info.get("thread"), redactor)
    if thread is not None:
        fields["thread"] = thread
    for key, value in data.items():
        if key in ("msg", "node_info") or len(fields) >= MAX_FIELDS:
            continue
        scalar = _scalar(value, redactor)
        if scalar is not None:
            fields[f"data.{key}"] = scalar
    node_info = data.get("node_info")
    if isinstance(node_info, Mapping):
        for key in _NODE_INFO_FIELDS:
            scalar = _scalar(node_info.get(key), redactor)
            if scalar is not None and len(fields) < MAX_FIELDS:
                fields[f"node_info.{key}"] = scalar
    extra = info.get("extra")
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            if str(key).startswith("FLOE_") or len(fields) >= MAX_FIELDS:
                continue
            scalar = _scalar(value, redactor)
            if scalar is not None:
                fields[f"extra.{key}"] = scalar
    return fields


class LogBudget:
    """How many lines below ``warn`` a step may still export; counts what it left out."""

    def __init__(self, limit: int = MAX_RECORDS_BELOW_WARN) -> None:
        self.limit = limit
        self.exported = 0
        self.dropped = 0
        self._lock = threading.Lock()  # dbt lines and floe records come from several threads

    def allow(self, level: str) -> bool:
        if level_at_least(level, "warn"):
            return True
        with self._lock:
            if self.exported < self.limit:
                self.exported += 1
                return True
            self.dropped += 1
            return False


_STANDARD_RECORD_KEYS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "trace_id",
    "span_id",
}


class LogRecordForwarder(logging.Handler):
    """floe's own adapter log records (the ``floe_dagster`` logger) -> ``LogLine`` events.

    Records may come from any thread; they wait in a queue until :meth:`drain` hands them to the
    step's emitter (from the thread that owns it). Created for one step and removed at its end.
    """

    def __init__(
        self,
        *,
        run: DagsterRun,
        minimum: str,
        redactor: Redactor,
        budget: LogBudget,
        environment: str | None,
        attributes: Mapping[str, str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(logging.DEBUG)
        self.run = run
        self.minimum = minimum
        self.redactor = redactor
        self.budget = budget
        self.environment = environment
        self.attributes = dict(attributes)
        self._clock = clock
        self._run_span = ids.span_id_hex(ids.run_span_id(run.run_id))
        self._queue: deque[LogLine] = deque()
        self._count = 0
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self._line(record)
        except Exception:  # a log record must never break the step
            return
        if line is not None:
            self._queue.append(line)

    def _line(self, record: logging.LogRecord) -> LogLine | None:
        level = python_level(record.levelno)
        if not level_at_least(level, self.minimum):
            return None
        message = self.redactor.redact(record.getMessage()).strip()
        if not message or not self.budget.allow(level):
            return None
        fields: dict[str, LogValue] = {}
        for key, value in record.__dict__.items():
            if key in _STANDARD_RECORD_KEYS or key.startswith("_") or len(fields) >= MAX_FIELDS:
                continue
            scalar = _scalar(value, self.redactor)
            if scalar is not None:
                fields[key] = scalar
        if record.threadName:
            fields["thread"] = record.threadName
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            fields["exception.type"] = exc_type.__name__
            fields["exception.message"] = clip(self.redactor.redact(str(exc)), MAX_FIELD_CHARS)
            stack = "".join(traceback.format_exception(exc_type, exc, tb))
            fields["exception.stacktrace"] = clip(self.redactor.redact(stack), 8 * MAX_FIELD_CHARS)
        span_id = getattr(record, "span_id", None)
        unique_id = fields.get("unique_id")
        with self._lock:
            self._count += 1
            count = self._count
        at = datetime.fromtimestamp(record.created, UTC)
        return LogLine(
            event_id=ids.event_id("log", self.run.run_id, "floe", str(count), f"{at.timestamp()}"),
            emitted_at=self._clock(),
            run=self.run,
            source="floe",
            at=at,
            level=level,
            message=clip(message, MAX_LOG_MESSAGE_CHARS),
            span_id=span_id if isinstance(span_id, str) and span_id else self._run_span,
            name=record.name,
            unique_id=unique_id if isinstance(unique_id, str) else None,
            fields=fields,
            environment=self.environment,
            attributes=self.attributes,
        )

    def drain(self, limit: int | None = None) -> list[LogLine]:
        """The records queued so far (at most ``limit``), oldest first."""
        count = len(self._queue) if limit is None else min(limit, len(self._queue))
        return [self._queue.popleft() for _ in range(count)]
