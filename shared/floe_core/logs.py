"""The one JSON log format of every floe process: one object per line.

Fields, in this order: ``ts`` (UTC, ISO 8601 with ``Z``), ``level`` (lower case), ``logger``,
``message``, then whatever the call passed in ``extra`` (``sink``, ``segment``, ``error``,
``trace_id``/``span_id`` in the adapter...) and ``exception`` (the formatted traceback) when there
is one. Values JSON cannot hold are written as their ``str()``; attributes whose name starts with
``_`` are private and left out. Events and their contents are never logged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import msgspec

__all__ = ["JsonFormatter"]

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_encoder = msgspec.json.Encoder()


def _plain(value: object) -> object:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = _plain(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(out).decode()
