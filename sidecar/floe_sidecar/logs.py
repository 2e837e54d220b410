"""Structured logs: floe's one JSON log format on stderr (or plain text for a terminal).

The format is :class:`floe_core.logs.JsonFormatter`'s; calls pass ``extra`` (``sink``,
``segment``, ``error``...). Events and their contents are never logged.
"""

from __future__ import annotations

import logging
import sys

from floe_core.logs import JsonFormatter

__all__ = ["setup_logging"]


def setup_logging(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
