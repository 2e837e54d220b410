"""Reading the spool: complete lines only, from a consumer's own positions, segment by segment.

Each sink owns one :class:`SpoolReader`. It reads ahead of the consumer's saved cursor, one
:class:`SegmentSlice` at a time (a run of lines of one segment, not a trace span); the consumer
commits a slice's position only once it has dealt with it (delivered it, or dead-lettered what
was bad in it).

Rules every consumer relies on:

* a line is returned only once its ``\\n`` is on disk; a partial last line is left for later,
  unless the segment is sealed (its writer closed or died): then the bytes are returned once as a
  ``fragment`` slice, to be dead-lettered, and the reader moves past them;
* a line longer than ``max_line_bytes`` is returned as an ``oversized`` slice (its first
  :data:`~floe_sidecar.engine.deadletter.OVERSIZED_HEAD_BYTES` bytes and its length), never
  buffered whole;
* a segment that shrank below the position, or whose inode or first bytes changed, was truncated or
  replaced: the reader reports it through ``on_reset(segment, reason, inode)`` and reads it again
  from offset 0.
"""

from __future__ import annotations

import heapq
import os
import stat
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from floe_core.spool import fd_is_sealed, is_segment_name
from floe_core.spoolfs import SymlinkRefused, open_dir, open_in
from floe_core.transport import MAX_LINE_BYTES
from floe_sidecar.engine.cursor import FINGERPRINT_BYTES, SegmentPosition, fingerprint
from floe_sidecar.engine.deadletter import OVERSIZED_HEAD_BYTES

__all__ = ["SealedEnd", "SegmentSlice", "SpoolReader"]

DEFAULT_CHUNK_BYTES = 1024 * 1024
#: While there is something to read, the directory is listed again at most this often.
RELIST_SECONDS = 1.0


class SealedEnd(NamedTuple):
    """A segment file found sealed (its writer gone) and read to its end, which is ``size``.

    Writers never reopen a segment, so this stays true for as long as the same inode has the
    same size: retention and the status use it instead of opening and locking each file again.
    """

    ino: int
    dev: int
    size: int


@dataclass(slots=True)
class SegmentSlice:
    """A run of complete lines from one segment, or one anomaly (oversized line, fragment): what
    the reader hands out, and the position a consumer commits once it has dealt with it."""

    segment: str
    start: int  # offset of the first byte
    end: int  # offset just past the slice: the position to commit
    ino: int
    dev: int
    fp: str
    fp_len: int
    lines: list[bytes] = field(default_factory=list)  # without their "\n"
    kind: str = "lines"  # lines | oversized | fragment
    head: bytes = b""  # oversized / fragment: the bytes kept
    length: int = 0  # oversized / fragment: the full length

    def position(self) -> SegmentPosition:
        return SegmentPosition(
            ino=self.ino, dev=self.dev, offset=self.end, fp=self.fp, fp_len=self.fp_len
        )

    def offsets(self) -> list[int]:
        """Byte offset of each line (computed on demand: only dead-lettering needs them)."""
        out = []
        offset = self.start
        for line in self.lines:
            out.append(offset)
            offset += len(line) + 1
        return out


@dataclass(slots=True)
class _Buffered:
    """Lines read from disk but not yet handed out (a consumer asked for fewer)."""

    segment: str
    lines: list[bytes]
    index: int
    offset: int  # offset of lines[index]


class SpoolReader:
    def __init__(
        self,
        spool_dir: Path,
        positions: dict[str, SegmentPosition],
        *,
        max_line_bytes: int = MAX_LINE_BYTES,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        on_reset: Callable[[str, str, int], None] | None = None,
        on_refused: Callable[[str, str], None] | None = None,
    ) -> None:
        self.spool_dir = spool_dir
        self.max_line_bytes = max_line_bytes
        self.chunk_bytes = max(chunk_bytes, max_line_bytes + 1)
        self._on_reset = on_reset
        self._on_refused = on_refused
        self._refused: set[str] = set()  # links and non-regular files: never opened again
        self._dir: int | None = None
        # Read positions: ahead of the saved cursor, never behind it.
        self._pos: dict[str, SegmentPosition] = {
            name: SegmentPosition(ino=p.ino, dev=p.dev, offset=p.offset, fp=p.fp, fp_len=p.fp_len)
            for name, p in positions.items()
        }
        self._verified: set[str] = set()
        # Sealed and read to the end: skipped without a stat, and told to retention.
        self._sealed_done: dict[str, SealedEnd] = {}
        self._buffered: _Buffered | None = None
        self._gone: set[str] = set()
        self._queue: deque[str] = deque()  # names still to look at, oldest first
        self._listed: set[str] = set()  # every name of the last listing
        self._listed_at = -RELIST_SECONDS

    def gone(self) -> set[str]:
        """Segments found deleted (to prune from the cursor), until :meth:`pruned` is called."""
        return set(self._gone)

    def pruned(self, names: set[str]) -> None:
        self._gone -= names

    def seed(self, name: str, position: SegmentPosition) -> None:
        """Read ``name``, once it appears, from ``position`` (see :meth:`SinkPipeline.seed`)."""
        self._pos[name] = SegmentPosition(
            ino=position.ino,
            dev=position.dev,
            offset=position.offset,
            fp=position.fp,
            fp_len=position.fp_len,
        )
        self._verified.discard(name)
        self._sealed_done.pop(name, None)
        if name not in self._queue:  # queued at the next listing, if it is there already
            self._listed.discard(name)

    def sealed_ends(self) -> dict[str, SealedEnd]:
        """The segments this reader found sealed and read to their end (a copy: safe to take
        from another thread)."""
        return dict(self._sealed_done)

    def read(self, max_lines: int) -> SegmentSlice | None:
        """The next slice (at most ``max_lines`` lines), oldest segment first; None: caught up.

        The directory is listed again only when the segments known so far have nothing more (or
        the listing is older than :data:`RELIST_SECONDS`), and segments sealed and read to the
        end leave the queue: draining ``n`` segments costs ``O(n)`` opens, not ``O(n²)``.
        """
        if self._buffered is not None:
            return self._from_buffer(max_lines)
        if time.monotonic() - self._listed_at >= RELIST_SECONDS:
            self._relist()
        piece = self._scan(max_lines)
        if piece is None:
            self._relist()
            piece = self._scan(max_lines)
        return piece

    def _scan(self, max_lines: int) -> SegmentSlice | None:
        """The next slice from the queue, oldest segment first. A segment read to its end and
        sealed (or gone, or refused) leaves the queue for good; one with nothing new yet (still
        written) keeps its place. The queue is a deque: each call costs the segments it looks
        at, not the length of the backlog behind them."""
        queue = self._queue
        waiting: list[str] = []  # looked at, nothing new yet: back in front, in order
        piece = None
        while queue:
            name = queue[0]
            piece = self._read_segment(name, max_lines)
            if name in self._sealed_done or name in self._refused:
                queue.popleft()  # read to its end and sealed, or refused: never again
            elif name not in self._pos:  # gone (forgotten): listed afresh should it come back
                queue.popleft()
            elif piece is None:
                waiting.append(queue.popleft())
            if piece is not None:
                break
        queue.extendleft(reversed(waiting))
        return piece

    def _relist(self) -> None:
        """Take in what the directory holds now: segments that appeared join the queue in name
        order, segments that went are forgotten (pruned from the cursor).

        Only the names not seen before are filtered and sorted, and the queue (segments not
        done yet) is kept, not rebuilt: a relist of a long backlog costs one ``listdir`` and
        two set operations, however often a reader that caught up lists again.
        """
        try:
            entries = set(os.listdir(self.spool_dir))
        except FileNotFoundError:
            entries = set()
        listed = self._listed
        gone = listed - entries
        fresh = sorted(n for n in entries - listed if is_segment_name(n))
        self.close()  # the next open takes the directory as it is now
        if gone:
            for name in gone:  # deleted (retired): prune from the cursor
                self._forget(name)
                self._refused.discard(name)
            listed -= gone
            self._queue = deque(n for n in self._queue if n not in gone)
        if fresh:
            listed.update(fresh)
            queue = self._queue
            if not queue or queue[-1] < fresh[0]:
                queue.extend(fresh)  # the usual case: newer segments sort last
            else:
                self._queue = deque(heapq.merge(queue, fresh))
        self._listed_at = time.monotonic()

    # -- internals -------------------------------------------------------------------------

    def _from_buffer(self, max_lines: int) -> SegmentSlice:
        buf = self._buffered
        assert buf is not None
        pos = self._pos[buf.segment]
        lines = buf.lines[buf.index : buf.index + max_lines]
        end = buf.offset + sum(len(line) for line in lines) + len(lines)
        piece = SegmentSlice(
            buf.segment, buf.offset, end, pos.ino, pos.dev, pos.fp, pos.fp_len, lines
        )
        buf.index += len(lines)
        buf.offset = end
        if buf.index >= len(buf.lines):
            self._buffered = None
        return piece

    def _reset(self, name: str, reason: str, st: os.stat_result) -> SegmentPosition:
        if self._on_reset is not None:
            self._on_reset(name, reason, st.st_ino)
        pos = SegmentPosition(ino=st.st_ino, dev=st.st_dev)
        self._pos[name] = pos
        return pos

    def _read_segment(self, name: str, max_lines: int) -> SegmentSlice | None:
        try:
            fd = open_in(self._dir_fd(), name, os.O_RDONLY | os.O_NONBLOCK, shown=name)
        except FileNotFoundError:
            self._forget(name)
            return None
        except SymlinkRefused as exc:
            self._refuse(name, str(exc))
            return None
        try:
            # The seal first, the size after it: a segment found sealed has its final size in
            # this one fstat, so a segment read whole costs open, flock, fstat, pread, close.
            # (The shared lock goes with the descriptor, closed below.)
            sealed = _locked_shared(fd)
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # a FIFO, a device: never read
                self._refuse(name, f"not a regular file, refused: {self.spool_dir / name}")
                return None
            return self._read_open_segment(fd, st, name, max_lines, sealed)
        finally:
            os.close(fd)

    def _dir_fd(self) -> int:
        """The spool directory, opened once per listing (no path resolved per segment)."""
        if self._dir is None:
            self._dir = open_dir(self.spool_dir)
        return self._dir

    def close(self) -> None:
        if self._dir is not None:
            os.close(self._dir)
            self._dir = None

    def _refuse(self, name: str, reason: str) -> None:
        self._refused.add(name)
        if self._on_refused is not None:
            self._on_refused(name, reason)

    def _forget(self, name: str) -> None:
        if self._pos.pop(name, None) is not None:
            self._gone.add(name)
        self._verified.discard(name)
        self._sealed_done.pop(name, None)
        self._listed.discard(name)  # should it be created again, the next listing queues it

    def _read_open_segment(
        self, fd: int, st: os.stat_result, name: str, max_lines: int, sealed: bool
    ) -> SegmentSlice | None:
        """Read ``fd`` (``st`` taken after the seal was tested: with ``sealed``, its size is
        final) from this reader's position in ``name``."""
        pos = self._pos.get(name)
        if pos is None and sealed and 0 < st.st_size <= self.chunk_bytes:
            whole = self._read_sealed_whole(fd, st, name, max_lines)
            if whole is not None:
                return whole
        if pos is None:
            pos = self._pos[name] = SegmentPosition(ino=st.st_ino, dev=st.st_dev)
        elif (pos.ino, pos.dev) != (st.st_ino, st.st_dev):
            pos = self._reset(name, "replaced (inode changed)", st)
        elif st.st_size < pos.offset:
            pos = self._reset(
                name, f"truncated to {st.st_size} bytes, below position {pos.offset}", st
            )
        elif (
            name not in self._verified
            and pos.fp_len
            and fingerprint(os.pread(fd, pos.fp_len, 0)) != pos.fp
        ):
            pos = self._reset(name, "replaced (first bytes changed)", st)
        self._verified.add(name)

        size = st.st_size
        offset = pos.offset
        if size <= offset:
            if sealed:
                self._sealed_done[name] = SealedEnd(pos.ino, pos.dev, size)
            return None
        data = os.pread(fd, min(self.chunk_bytes, size - offset), offset)
        if pos.fp_len < FINGERPRINT_BYTES and offset <= pos.fp_len:
            head = data[:FINGERPRINT_BYTES] if offset == 0 else os.pread(fd, FINGERPRINT_BYTES, 0)
            pos.fp, pos.fp_len = fingerprint(head), len(head)
        cut = data.rfind(b"\n")
        if cut >= 0:
            lines = data.split(b"\n")
            lines.pop()  # the bytes after the last newline: not a line yet
            pos.offset = offset + cut + 1
            end = pos.offset
            if sealed and end == size:  # no second visit just to learn it is done
                self._sealed_done[name] = SealedEnd(pos.ino, pos.dev, size)
            lines, end = self._hold_back(name, lines, offset, end, max_lines)
            return SegmentSlice(name, offset, end, pos.ino, pos.dev, pos.fp, pos.fp_len, lines)
        if len(data) > self.max_line_bytes:
            return self._oversized(fd, name, pos, offset, data)
        # A partial last line: wait for its newline, unless nobody will ever write it.
        if sealed and len(data) == size - offset:
            pos.offset = size
            return SegmentSlice(
                name,
                offset,
                size,
                pos.ino,
                pos.dev,
                pos.fp,
                pos.fp_len,
                kind="fragment",
                head=data,
                length=len(data),
            )
        return None

    def _read_sealed_whole(
        self, fd: int, st: os.stat_result, name: str, max_lines: int
    ) -> SegmentSlice | None:
        """A sealed segment never read before, that fits one chunk and ends with a newline (a
        backlog of small segments is made of these): read whole, done, in one step. None: not
        such a segment after all (the general path takes it)."""
        size = st.st_size
        data = os.pread(fd, size, 0)
        if len(data) != size or data[-1] != 10:  # ends inside a line: the general path
            return None
        head = data[:FINGERPRINT_BYTES]
        pos = SegmentPosition(
            ino=st.st_ino, dev=st.st_dev, offset=size, fp=fingerprint(head), fp_len=len(head)
        )
        if data.find(b"\n") == size - 1:
            lines = [data[:-1]]
        else:
            lines = data.split(b"\n")
            lines.pop()
        self._pos[name] = pos
        self._verified.add(name)
        self._sealed_done[name] = SealedEnd(pos.ino, pos.dev, size)
        lines, end = self._hold_back(name, lines, 0, size, max_lines)
        return SegmentSlice(name, 0, end, pos.ino, pos.dev, pos.fp, pos.fp_len, lines)

    def _hold_back(
        self, name: str, lines: list[bytes], offset: int, end: int, max_lines: int
    ) -> tuple[list[bytes], int]:
        """The first ``max_lines`` of ``lines`` (read from ``offset`` to ``end``) and where they
        end; the rest is kept for the next read, not read again."""
        if len(lines) <= max_lines:
            return lines, end
        rest = lines[max_lines:]
        lines = lines[:max_lines]
        end = offset + sum(len(line) for line in lines) + len(lines)
        self._buffered = _Buffered(name, rest, 0, end)
        return lines, end

    def _oversized(
        self, fd: int, name: str, pos: SegmentPosition, offset: int, data: bytes
    ) -> SegmentSlice | None:
        """Skip a line over the limit without holding it: find its end, keep its head."""
        scan = offset + len(data)
        while True:
            size = os.fstat(fd).st_size
            if scan >= size:
                if fd_is_sealed(fd) and os.fstat(fd).st_size == size:
                    end = length_end = size  # the segment ends inside the oversized line
                    break
                return None  # still being written: look again later
            block = os.pread(fd, self.chunk_bytes, scan)
            newline = block.find(b"\n")
            if newline >= 0:
                length_end = scan + newline
                end = length_end + 1
                break
            scan += len(block)
        pos.offset = end
        return SegmentSlice(
            name,
            offset,
            end,
            pos.ino,
            pos.dev,
            pos.fp,
            pos.fp_len,
            kind="oversized",
            head=data[:OVERSIZED_HEAD_BYTES],
            length=length_end - offset,
        )


def _locked_shared(fd: int) -> bool:
    """Is the segment open as ``fd`` sealed? The shared lock, once taken, is kept until ``fd``
    closes (see :func:`~floe_core.spool.fd_is_sealed`); a file that takes no lock is not."""
    try:
        return fd_is_sealed(fd, closing=True)
    except OSError:
        return False
