"""``floe-sidecar replay``: what spool files turn into, through each sink's translation.

Reads the files line by line and writes one JSON object per output item::

    {"file": "...", "offset": 0, "event_id": "...", "type": "node_started",
     "sink": "openlineage", "item": {...}}

and ``{"file", "offset", "error"}`` for a line that is not a valid event. With no sink configured
it shows the decoded events themselves (``"sink": null``). It touches no cursor, delivers nothing,
writes no dead-letter: it is safe to run beside a live sidecar.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from floe_core.events import EventError, decode_event
from floe_core.linefile import bounded_lines
from floe_core.transport import MAX_LINE_BYTES
from floe_sidecar.sinks.base import Sink

__all__ = ["ReplaySummary", "render_item", "replay_files"]

_encoder = msgspec.json.Encoder()


@dataclass
class ReplaySummary:
    lines: int = 0
    events: int = 0
    items: int = 0
    errors: int = 0


def _fallback(obj: Any) -> Any:
    to_json = getattr(obj, "to_json", None)
    if callable(to_json):  # e.g. OpenTelemetry's ReadableSpan
        return json.loads(to_json())
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "backslashreplace")
    return repr(obj)


def render_item(sink: Sink[Any], item: Any) -> Any:
    """A JSON-able view of a translated item: the sink's own ``describe`` if it has one."""
    describe = getattr(sink, "describe", None)
    if callable(describe):
        return describe(item)
    if isinstance(item, bytes):
        try:
            return msgspec.json.decode(item)
        except msgspec.DecodeError:
            return item.decode("utf-8", "backslashreplace")
    try:
        return msgspec.to_builtins(item, enc_hook=_fallback)
    except (TypeError, msgspec.EncodeError):
        return _fallback(item)


def replay_files(
    files: Sequence[Path],
    sinks: Sequence[Sink[Any]],
    out: BinaryIO,
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> ReplaySummary:
    summary = ReplaySummary()
    for path in files:
        with path.open("rb") as handle:
            _replay_file(path, handle, sinks, out, summary, max_line_bytes)
    out.flush()
    return summary


def _replay_file(
    path: Path,
    handle: BinaryIO,
    sinks: Sequence[Sink[Any]],
    out: BinaryIO,
    summary: ReplaySummary,
    max_line_bytes: int,
) -> None:
    for offset, line, problem in bounded_lines(handle, max_line_bytes):
        summary.lines += 1
        where: dict[str, Any] = {"file": str(path), "offset": offset}
        if line is None:
            summary.errors += 1
            out.write(_encoder.encode({**where, "error": problem}) + b"\n")
            continue
        if not line.strip():
            continue
        try:
            event = decode_event(line)
        except EventError as exc:
            summary.errors += 1
            out.write(_encoder.encode({**where, "error": str(exc)}) + b"\n")
            continue
        summary.events += 1
        head = {**where, "event_id": event.event_id, "type": type(event).__struct_config__.tag}
        if not sinks:
            out.write(_encoder.encode({**head, "sink": None, "item": event}) + b"\n")
            continue
        for sink in sinks:
            try:
                items = sink.translate(event)
            except Exception as exc:
                summary.errors += 1
                error = f"translate failed: {type(exc).__name__}: {exc}"
                out.write(_encoder.encode({**head, "sink": sink.name, "error": error}) + b"\n")
                continue
            for item in items:
                summary.items += 1
                record = {**head, "sink": sink.name, "item": render_item(sink, item)}
                out.write(_encoder.encode(record) + b"\n")
