"""Bad input is reported once: the first sink to read a stretch of the spool dead-letters what is
bad in it; sinks that read it later skip those lines quietly.

Every sink decodes every line anyway (it needs the events), so one shared ledger replaces a
separate validating pass over the spool (which would decode everything twice). The ledger keeps,
per segment, the offset up to which every bad line has been written to the dead-letter file
(``<spool>/.sidecar/reported.json``). Sinks read each segment from its start, in order, so any
line below that mark was seen, and reported if bad, by whichever sink got there first. The mark
is saved durably whenever it moves past a bad line (after the dead-letter record is on disk) and
lazily otherwise: after a crash, re-checking good lines reports nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from floe_sidecar.engine.cursor import SegmentPosition, load_cursor, save_cursor
from floe_sidecar.engine.deadletter import OVERSIZED_HEAD_BYTES, DeadLetter, DeadLetterRecord
from floe_sidecar.engine.reader import Span

__all__ = ["BadLineLedger", "Problem"]

#: (index of the line in its span, dead-letter kind, reason)
Problem = tuple[int, str, str]


class BadLineLedger:
    def __init__(self, path: Path, deadletter: DeadLetter, max_line_bytes: int) -> None:
        self.path = path
        self.deadletter = deadletter
        self.max_line_bytes = max_line_bytes
        self.cursor = load_cursor(path, "reported")
        self.reported = 0  # records written by this process
        self._lock = threading.Lock()
        self._dirty = False
        self._noted: set[tuple[str, int, str]] = set()

    def record(self, span: Span, problems: Sequence[Problem] = ()) -> int:
        """``span`` has been read by a sink, with these bad lines; dead-letter the new ones."""
        with self._lock:
            position = self.cursor.positions.get(span.segment)
            mark = 0
            if position is not None and (position.ino, position.dev) == (span.ino, span.dev):
                mark = position.offset
            if span.end <= mark:
                return 0
            records = self._records(span, problems, mark)
            if records:
                self.deadletter.write(records)  # durable before the mark moves past them
            self.cursor.positions[span.segment] = span.position()
            if records:
                self.reported += len(records)
                self.cursor.dead_lettered += len(records)
                save_cursor(self.path, self.cursor)
                self._dirty = False
            else:
                self._dirty = True
            return len(records)

    def _records(
        self, span: Span, problems: Sequence[Problem], mark: int
    ) -> list[DeadLetterRecord]:
        if span.kind == "oversized":
            if span.start < mark:
                return []
            reason = (
                f"line of {span.length} bytes exceeds the {self.max_line_bytes}-byte limit; "
                f"only its first {len(span.head)} bytes are kept"
            )
            return [self._record(span, "oversized", reason, span.start, span.head, span.length)]
        if span.kind == "fragment":
            if span.start < mark:
                return []
            reason = "the segment is sealed but ends in the middle of a line"
            return [self._record(span, "fragment", reason, span.start, span.head, None)]
        if not problems:
            return []
        offsets = span.offsets()
        records = []
        for index, kind, reason in problems:
            if offsets[index] >= mark:
                line = span.lines[index]
                if kind == "oversized":
                    head, length = line[:OVERSIZED_HEAD_BYTES], len(line)
                else:
                    head, length = line, None
                records.append(self._record(span, kind, reason, offsets[index], head, length))
        return records

    @staticmethod
    def _record(
        span: Span, kind: str, reason: str, offset: int, line: bytes, length: int | None
    ) -> DeadLetterRecord:
        return DeadLetterRecord(
            kind=kind, reason=reason, segment=span.segment, offset=offset, line=line, length=length
        )

    def reset(self, segment: str, reason: str, inode: int) -> None:
        """The segment was truncated or replaced: note it in the dead-letter file (once, not per
        sink), and report its bad lines again, since they are new."""
        key = (segment, inode, reason.split(" ", 1)[0])
        with self._lock:
            self.cursor.positions.pop(segment, None)
            self._dirty = True
            if key in self._noted:
                return
            self._noted.add(key)
            note = DeadLetterRecord(
                kind="note",
                reason=f"segment {reason}; read again from offset 0 (its lines may be delivered "
                "twice, or be lost if they were cut off before delivery)",
                segment=segment,
                offset=0,
            )
            self.reported += self.deadletter.write([note])

    def forget(self, segments: Iterable[str]) -> None:
        """Retired segments need no mark."""
        with self._lock:
            for name in segments:
                if self.cursor.positions.pop(name, None) is not None:
                    self._dirty = True

    def save_if_dirty(self) -> None:
        with self._lock:
            if self._dirty:
                save_cursor(self.path, self.cursor)
                self._dirty = False

    def positions(self) -> dict[str, SegmentPosition]:
        with self._lock:
            return dict(self.cursor.positions)
