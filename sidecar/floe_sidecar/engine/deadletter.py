"""The dead-letter file: everything the sidecar could not deliver, with the reason and the place.

One JSON object per line::

    {"at": "2026-...Z", "kind": "bad_line", "reason": "undecodable line: ...",
     "sink": null, "segment": "2026...-events-1-ab12cd.ndjson", "offset": 1234,
     "length": 57, "line": "{not json"}

``kind`` is one of: ``bad_line`` (undecodable, invalid, unknown type, future version),
``oversized`` (longer than the line limit; only ``head`` bytes kept), ``fragment`` (a sealed
segment or a closed connection ended mid-line), ``rejected`` (the endpoint refused an item for
good), ``gave_up`` (retries exhausted), ``translate_error`` (a sink could not translate the event),
``note`` (a segment was truncated or replaced; no line attached). The raw bytes are in ``line``
when they are UTF-8, else base64 in ``line_b64``; ``truncated`` says only the head was kept.
Lines are data: they are stored, never evaluated. The file is owner-only.
"""

from __future__ import annotations

import base64
import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from floe_core.fsutil import append_lines

__all__ = [
    "OVERSIZED_HEAD_BYTES",
    "DeadLetter",
    "DeadLetterRecord",
    "count_records",
    "read_deadletter",
    "restore_line",
]

COUNT_READ_BYTES = 1024 * 1024

#: How much of an oversized line is kept in the dead-letter file.
OVERSIZED_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    kind: str
    reason: str
    segment: str | None = None
    offset: int | None = None
    line: bytes | None = None
    length: int | None = None  # full length when ``line`` holds only the head
    sink: str | None = None

    def to_json(self, at: str) -> dict[str, object]:
        out: dict[str, object] = {
            "at": at,
            "kind": self.kind,
            "reason": self.reason,
            "sink": self.sink,
            "segment": self.segment,
            "offset": self.offset,
        }
        if self.line is not None:
            out["length"] = self.length if self.length is not None else len(self.line)
            out["truncated"] = self.length is not None and self.length > len(self.line)
            try:
                out["line"] = self.line.decode("utf-8")
            except UnicodeDecodeError:
                out["line_b64"] = base64.b64encode(self.line).decode("ascii")
        return out


class DeadLetter:
    """Append-only, thread-safe: sink workers and the intake write to it concurrently.

    Records are durable (:func:`floe_core.fsutil.append_lines`) when :meth:`write` returns; it
    raises ``OSError`` when they are not.
    """

    def __init__(self, path: Path, *, durable: bool = True, follow_symlinks: bool = True) -> None:
        self.path = path
        self.durable = durable
        self.follow_symlinks = follow_symlinks
        self.count = 0  # records written by this process
        self.write_errors = 0  # writes that raised (their lines were held back, not lost)
        self._lock = threading.Lock()
        self._encoder = msgspec.json.Encoder()

    def write(self, records: Iterable[DeadLetterRecord]) -> int:
        at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        data = b"".join(self._encoder.encode(r.to_json(at)) + b"\n" for r in records)
        if not data:
            return 0
        written = data.count(b"\n")
        with self._lock:
            try:
                append_lines(
                    self.path, data, durable=self.durable, follow_symlinks=self.follow_symlinks
                )
            except OSError:
                self.write_errors += 1
                raise
            self.count += written
        return written

    def absorb(self, data: bytes) -> int:
        """Append records another sidecar wrote (a hand-off: the dead-letter file of an adopted
        spool), as they are, durably; their count."""
        if data and not data.endswith(b"\n"):
            data += b"\n"  # a torn last record stays one record
        written = sum(1 for line in data.splitlines() if line.strip())
        if not written:
            return 0
        with self._lock:
            append_lines(
                self.path, data, durable=self.durable, follow_symlinks=self.follow_symlinks
            )
            self.count += written
        return written

    def close(self) -> None:
        """Nothing is held open between writes."""


def count_records(path: Path) -> int:
    """Records in a dead-letter file, counted in bounded reads without decoding any (``status``
    runs often; a torn last record counts as one)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return 0  # --dead-letter /dev/null, a FIFO: nothing to count
        count, last = 0, b"\n"
        while chunk := os.read(fd, COUNT_READ_BYTES):
            count += chunk.count(b"\n")
            last = chunk[-1:]
        return count + (last != b"\n")
    finally:
        os.close(fd)


def read_deadletter(path: Path) -> list[dict[str, object]]:
    """All records, oldest first (for ``status`` and for tests)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return [msgspec.json.decode(line) for line in data.splitlines() if line.strip()]


def restore_line(record: dict[str, object]) -> bytes | None:
    """The raw bytes a record kept (for re-injection after a fix)."""
    if isinstance(record.get("line"), str):
        return str(record["line"]).encode("utf-8")
    if isinstance(record.get("line_b64"), str):
        return base64.b64decode(str(record["line_b64"]))
    return None
