"""NDJSON framing for a byte stream: complete lines out, oversized lines set aside.

Pure and incremental (no I/O), so the socket intake stays small and the framing can be tested
with arbitrary bytes. A line over the limit is never buffered whole: its first
:data:`~floe_sidecar.engine.deadletter.OVERSIZED_HEAD_BYTES` bytes are kept, the rest is counted and
dropped until its newline, and it is reported once, in order with the other lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from floe_sidecar.engine.deadletter import OVERSIZED_HEAD_BYTES

__all__ = ["Framed", "LineFramer", "LineHead"]


@dataclass(frozen=True, slots=True)
class LineHead:
    """The start of a line that is not kept whole (too long, or never finished)."""

    length: int  # the whole line, without its newline
    head: bytes


@dataclass(slots=True)
class Framed:
    #: Complete lines within the limit, in order, without their newline.
    lines: list[bytes] = field(default_factory=list)
    oversized: list[LineHead] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Lines this chunk completed: what the sender is acknowledged for."""
        return len(self.lines) + len(self.oversized)


class LineFramer:
    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self._partial = bytearray()
        self._discarding = False  # inside an oversized line
        self._discarded = 0  # its length so far
        self._head = b""

    @property
    def held(self) -> int:
        """Bytes held in memory for the unfinished line (its head only, once oversized)."""
        return len(self._head) if self._discarding else len(self._partial)

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held or counted so far."""
        return self._discarded if self._discarding else len(self._partial)

    def feed(self, data: bytes) -> Framed:
        out = Framed()
        pieces = data.split(b"\n")
        tail = pieces.pop()  # after the last newline: the start of the next line
        limit = self.max_line_bytes
        for i, piece in enumerate(pieces):
            if i == 0 and self._discarding:
                self._keep_head(piece)
                out.oversized.append(LineHead(self._discarded + len(piece), self._head))
                self._discarding, self._discarded, self._head = False, 0, b""
                continue
            if i == 0 and self._partial:
                self._partial += piece
                piece = bytes(self._partial)
                self._partial.clear()
            if len(piece) > limit:
                out.oversized.append(LineHead(len(piece), piece[:OVERSIZED_HEAD_BYTES]))
            else:
                out.lines.append(piece)
        if self._discarding:
            self._keep_head(tail)
            self._discarded += len(tail)
        else:
            self._partial += tail
            if len(self._partial) > limit:
                self._discarding = True
                self._discarded = len(self._partial)
                self._head = bytes(self._partial[:OVERSIZED_HEAD_BYTES])
                self._partial.clear()
        return out

    def _keep_head(self, more: bytes) -> None:
        room = OVERSIZED_HEAD_BYTES - len(self._head)
        if room > 0 and more:
            self._head += more[:room]

    def unfinished(self) -> LineHead | None:
        """At end of stream: the bytes of a line that never got its newline, if any."""
        if self._discarding:
            return LineHead(self._discarded, self._head)
        if self._partial:
            return LineHead(len(self._partial), bytes(self._partial[:OVERSIZED_HEAD_BYTES]))
        return None
