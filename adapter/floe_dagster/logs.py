"""Trace-correlated logs: every adapter log line names the trace and span it belongs to.

The trace id is the Dagster run id's UUID bits and span ids are derived from run, invocation and
node ids (``floe_core.ids``), so a log line, a span in the trace backend and a lineage event of the
same node share identifiers. Python log records get ``trace_id``/``span_id`` from a context
variable set by the step (:func:`trace_scope`); they are written in floe's one JSON log format
(:class:`floe_core.logs.JsonFormatter`); messages to the Dagster log carry the ids in their text
(:func:`with_trace`), since the Dagster event log stores only the message.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO

from floe_core.logs import JsonFormatter

__all__ = [
    "LOGGER_NAME",
    "TraceContextFilter",
    "configure_logging",
    "current_trace",
    "trace_scope",
    "with_trace",
]

LOGGER_NAME = "floe_dagster"
LOG_LEVEL_ENV = "FLOE_LOG_LEVEL"

_current: ContextVar[tuple[str, str] | None] = ContextVar("floe_trace", default=None)


def current_trace() -> tuple[str, str] | None:
    """(trace_id, span_id) of the code running now, as 32/16 hex digits."""
    return _current.get()


@contextmanager
def trace_scope(trace_id: str, span_id: str) -> Iterator[None]:
    """Log records inside the block carry this trace and span."""
    token = _current.set((trace_id, span_id))
    try:
        yield
    finally:
        _current.reset(token)


def with_trace(message: str, trace_id: str, span_id: str) -> str:
    """A Dagster log message that names its trace and span."""
    return f"{message} [trace_id={trace_id} span_id={span_id}]"


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id``/``span_id`` to records that do not set them via ``extra``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "trace_id"):
            current = _current.get()
            record.trace_id, record.span_id = current if current else (None, None)
        return True


def configure_logging(
    stream: IO[str] | None = None, level: str | int | None = None
) -> logging.Logger:
    """Give the ``floe_dagster`` logger one JSON handler (idempotent); returns the logger.

    Level from ``level``, else ``FLOE_LOG_LEVEL``, else INFO. Records do not propagate to the root
    logger, so they are written once, as JSON, to ``stream`` (default stderr).
    """
    logger = logging.getLogger(LOGGER_NAME)
    wanted = level if level is not None else os.environ.get(LOG_LEVEL_ENV, "INFO")
    logger.setLevel(wanted.upper() if isinstance(wanted, str) else wanted)
    for handler in logger.handlers:
        if getattr(handler, "_floe_json", False):
            if stream is not None and isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)
            return logger
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TraceContextFilter())
    handler._floe_json = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False
    return logger
