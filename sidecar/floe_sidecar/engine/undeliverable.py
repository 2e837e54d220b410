"""A line that cannot be delivered: one owner, one decision.

Every way a line or an item fails to reach a sink ends here, and nowhere else:

* a line that is not an event (undecodable, invalid, an unknown type or a newer version), a line
  over the size limit, or bytes that never became a line (a sealed segment or a closed socket
  connection that ends mid-line): :meth:`Undeliverable.events`, :meth:`~Undeliverable.anomaly`,
  :meth:`~Undeliverable.intake`;
* an event a sink's ``translate`` raised on: :meth:`~Undeliverable.translate_failed`;
* items an endpoint refused for good, or a batch whose retries were given up:
  :meth:`~Undeliverable.refused`;
* a segment truncated or replaced under the readers: :meth:`~Undeliverable.segment_reset` (a
  note, no line);
* a hand-off (:mod:`floe_sidecar.engine.handoff`): an entry of an adopted pod's spool that is not
  a regular file (:meth:`~Undeliverable.not_a_segment`, a note; it is never followed), and the
  records the pod's sidecar had dead-lettered (:meth:`~Undeliverable.absorb`).

The decision is always the same: the line (or item) goes to the dead-letter file, with the
reason and where it came from, durably, before the caller may move its cursor past it. When the
dead-letter file cannot be written these methods raise ``OSError`` and record nothing as done,
so the caller must not move past the line.

Bad input is reported once, not once per sink: every sink decodes every line anyway (it needs the
events), so the first sink to read a stretch of a segment dead-letters what is bad in it and sinks
that read it later skip those lines quietly. A mark per segment (``<spool>/.sidecar/
reported.json``) says up to where every bad line has been written; sinks read each segment from
its start, in order, so any line below the mark was seen, and reported if bad, by whichever sink
got there first. The mark is saved durably whenever it moves past a bad line (after the record is
on disk) and lazily otherwise: after a crash, re-checking good lines reports nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from floe_core.events import Event, EventError, decode_event
from floe_sidecar.engine.cursor import SegmentPosition, load_cursor, save_cursor
from floe_sidecar.engine.deadletter import OVERSIZED_HEAD_BYTES, DeadLetter, DeadLetterRecord
from floe_sidecar.engine.reader import SegmentSlice

__all__ = ["Problem", "Undeliverable"]

#: (index of the line in its slice, dead-letter kind, reason)
Problem = tuple[int, str, str]


class Undeliverable:
    """The one owner of lines and items that cannot be delivered (see the module docstring).

    Thread-safe: every sink's worker thread and the socket intake use the same instance.
    """

    def __init__(self, deadletter: DeadLetter, reported_path: Path, max_line_bytes: int) -> None:
        self.deadletter = deadletter
        self.path = reported_path
        self.max_line_bytes = max_line_bytes
        self.cursor = load_cursor(reported_path, "reported")
        self.reported = 0  # bad-line records (and notes) written by this process
        self._lock = threading.Lock()
        self._dirty = False
        self._noted: set[tuple[str, int, str]] = set()

    @property
    def written(self) -> int:
        """Every record this process wrote to the dead-letter file."""
        return self.deadletter.count

    # -- lines read from the spool -----------------------------------------------------------

    def events(self, piece: SegmentSlice) -> list[tuple[int, Event]]:
        """The events in a slice of a segment, each with the index of its line in the slice.

        Every other line (over the size limit, not a valid event) is dead-lettered before this
        returns, once whatever the number of sinks; blank lines carry nothing and are skipped.
        """
        return list(self.each_event(piece))

    def each_event(self, piece: SegmentSlice) -> Iterator[tuple[int, Event]]:
        """:meth:`events`, one at a time: the bad lines are dead-lettered once the last event
        has been taken. A sink translates each event as it comes and lets it go; holding a
        slice's thousand decoded events at once made the garbage collector walk them over and
        over (about 2 µs per event)."""
        problems: list[Problem] = []
        limit = self.max_line_bytes
        for index, line in enumerate(piece.lines):
            if len(line) > limit:
                reason = (
                    f"line of {len(line)} bytes exceeds the {limit}-byte limit; "
                    f"only its first {min(len(line), OVERSIZED_HEAD_BYTES)} bytes are kept"
                )
                problems.append((index, "oversized", reason))
                continue
            try:
                event = decode_event(line)
            except EventError as exc:
                if line.strip():
                    problems.append((index, "bad_line", str(exc)))
                continue
            yield index, event
        self._report(piece, problems)

    def anomaly(self, piece: SegmentSlice) -> None:
        """An oversized line or a fragment the reader returned instead of lines."""
        self._report(piece, ())

    def _report(self, piece: SegmentSlice, problems: Sequence[Problem]) -> int:
        """``piece`` has been read by a sink, with these bad lines; dead-letter the new ones
        (those at or past the segment's mark)."""
        with self._lock:
            position = self.cursor.positions.get(piece.segment)
            mark = 0
            if position is not None and (position.ino, position.dev) == (piece.ino, piece.dev):
                mark = position.offset
            if piece.end <= mark:
                return 0
            records = self._records(piece, problems, mark)
            if records:
                self.deadletter.write(records)  # durable before the mark moves past them
            self.cursor.positions[piece.segment] = piece.position()
            if records:
                self.reported += len(records)
                self.cursor.dead_lettered += len(records)
                save_cursor(self.path, self.cursor)
                self._dirty = False
            else:
                self._dirty = True
            return len(records)

    def _records(
        self, piece: SegmentSlice, problems: Sequence[Problem], mark: int
    ) -> list[DeadLetterRecord]:
        if piece.kind == "oversized":
            if piece.start < mark:
                return []
            reason = (
                f"line of {piece.length} bytes exceeds the {self.max_line_bytes}-byte limit; "
                f"only its first {len(piece.head)} bytes are kept"
            )
            return [_record(piece, "oversized", reason, piece.start, piece.head, piece.length)]
        if piece.kind == "fragment":
            if piece.start < mark:
                return []
            reason = "the segment is sealed but ends in the middle of a line"
            return [_record(piece, "fragment", reason, piece.start, piece.head, None)]
        if not problems:
            return []
        offsets = piece.offsets()
        records = []
        for index, kind, reason in problems:
            if offsets[index] >= mark:
                line = piece.lines[index]
                if kind == "oversized":
                    head, length = line[:OVERSIZED_HEAD_BYTES], len(line)
                else:
                    head, length = line, None
                records.append(_record(piece, kind, reason, offsets[index], head, length))
        return records

    # -- what one sink could not deliver ---------------------------------------------------

    def translate_failed(
        self, piece: SegmentSlice, failed: Sequence[tuple[int, str]], sink: str
    ) -> int:
        """Events of ``piece`` (by index) the sink's ``translate`` raised on: a translation bug
        never loses the event. Returns the records written."""
        offsets = piece.offsets()
        return self.deadletter.write(
            DeadLetterRecord(
                kind="translate_error",
                reason=reason,
                segment=piece.segment,
                offset=offsets[index],
                line=piece.lines[index],
                sink=sink,
            )
            for index, reason in failed
        )

    def refused(
        self,
        items: Sequence[tuple[int, SegmentSlice, int, str]],
        *,
        kind: str,
        batch_size: int,
        sink: str,
    ) -> int:
        """Items of one batch that will never be delivered, each as (its index in the batch, the
        slice and line index of the event it came from, reason): ``rejected`` by the endpoint, or
        ``gave_up`` after the configured retries. Returns the records written."""
        return self.deadletter.write(
            DeadLetterRecord(
                kind=kind,
                reason=f"item {item} of a batch of {batch_size}: {reason}",
                segment=piece.segment,
                offset=piece.offsets()[line],
                line=piece.lines[line],
                sink=sink,
            )
            for item, piece, line, reason in items
        )

    # -- the socket intake -------------------------------------------------------------------

    def intake(self, kind: str, reason: str, head: bytes, length: int) -> int:
        """Bytes a socket connection sent that never became a spool line: an ``oversized`` line
        (acknowledged, persisted here only) or a ``fragment`` (the connection closed mid-line)."""
        return self.deadletter.write(
            [
                DeadLetterRecord(
                    kind=kind,
                    reason=f"socket intake: {reason}",
                    segment=None,
                    offset=None,
                    line=head,
                    length=length,
                )
            ]
        )

    # -- segments ----------------------------------------------------------------------------

    def segment_reset(self, segment: str, reason: str, inode: int) -> None:
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

    def not_followed(self, segment: str, reason: str) -> None:
        """An entry named like a segment that is a symbolic link or not a regular file: never
        opened, never followed (see :mod:`floe_core.spoolfs`); noted once, not per sink."""
        key = (segment, 0, "not_followed")
        with self._lock:
            if key in self._noted:
                return
            self._noted.add(key)
            note = DeadLetterRecord(kind="note", reason=reason, segment=segment)
            self.reported += self.deadletter.write([note])

    # -- a hand-off ----------------------------------------------------------------------------

    def seed(self, segment: str, position: SegmentPosition) -> None:
        """Bad lines of ``segment`` below ``position`` were dead-lettered by another sidecar (a
        run pod's, whose spool this one adopts): they are not reported again."""
        with self._lock:
            self.cursor.positions[segment] = position
            self._dirty = True

    def not_a_segment(self, spool: Path, name: str) -> None:
        """An entry of an adopted spool, named like a segment, that is not a regular file (a
        symbolic link, say): it is never followed; the note says it is removed."""
        reason = (
            f"{spool}: {name} is not a regular file (never followed); removed from the pod's spool"
        )
        with self._lock:
            self.reported += self.deadletter.write(
                [DeadLetterRecord(kind="note", reason=reason, segment=name)]
            )

    def absorb(self, data: bytes) -> int:
        """The dead-letter records of an adopted spool, appended as they are; their count."""
        return self.deadletter.absorb(data)

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


def _record(
    piece: SegmentSlice, kind: str, reason: str, offset: int, line: bytes, length: int | None
) -> DeadLetterRecord:
    return DeadLetterRecord(
        kind=kind, reason=reason, segment=piece.segment, offset=offset, line=line, length=length
    )
