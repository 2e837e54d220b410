"""The synchronous half of one sink: read, decode, translate, batch, and commit its cursor.

Everything here runs on the sink's own worker thread (:mod:`floe_sidecar.engine.worker`), so
neither decoding nor translation ever stalls the event loop that serves the socket. The async half
(:mod:`floe_sidecar.engine.runner`) decides when to call what: retries, backoff, wake-ups, shutdown.

Whatever cannot be delivered (a line that is not an event, an event translate raised on, an item
the endpoint refused, a batch given up on) is handed to the one owner of such lines,
:class:`~floe_sidecar.engine.undeliverable.Undeliverable`, which dead-letters it before the cursor
moves past it. Events become the sink's items; items are delivered in batches of at most
``max_batch``; the cursor is saved (atomically, durably) only after ``deliver`` returned. A sink
that keeps state (:class:`~floe_sidecar.sinks.base.StatefulSink`) has it saved in the same
cursor write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from floe_core.transport import MAX_LINE_BYTES
from floe_sidecar.engine.classify import is_permanent
from floe_sidecar.engine.cursor import NO_STATE, Cursor, SegmentPosition, load_cursor, save_cursor
from floe_sidecar.engine.reader import SealedEnd, SegmentSlice, SpoolReader
from floe_sidecar.engine.undeliverable import Undeliverable
from floe_sidecar.sinks.base import Rejection, Sink

__all__ = ["Batch", "SinkPipeline"]

log = logging.getLogger("floe_sidecar.engine.pipeline")


@dataclass(slots=True)
class Batch:
    """Items ready for one ``deliver`` call, and where they came from."""

    items: list[Any] = field(default_factory=list)
    # For each item, the segment slice and line index of the event it was translated from.
    origins: list[tuple[SegmentSlice, int]] = field(default_factory=list)
    pieces: list[SegmentSlice] = field(default_factory=list)
    events: int = 0


class SinkPipeline:
    def __init__(
        self,
        sink: Sink[Any],
        spool_dir: Path,
        cursor_path: Path,
        undeliverable: Undeliverable,
        *,
        max_line_bytes: int = MAX_LINE_BYTES,
        linger: float = 0.0,
    ) -> None:
        self.sink = sink
        self.name = sink.name
        self.max_batch = max(1, int(sink.max_batch))
        self.cursor_path = cursor_path
        self.undeliverable = undeliverable
        self.max_line_bytes = max_line_bytes
        self.linger = linger
        self.cursor: Cursor = load_cursor(cursor_path, sink.name)
        self._stateful = all(
            callable(getattr(sink, name, None)) for name in ("restore", "checkpoint", "committed")
        )
        self._restore_state()
        self.reader = SpoolReader(
            spool_dir,
            self.cursor.positions,
            max_line_bytes=max_line_bytes,
            on_reset=self._on_reset,
            on_refused=self.undeliverable.not_followed,
        )
        self.dead_lettered = 0  # items of this sink (translation errors, rejections, give-ups)
        # The cursor changes on the worker thread and is saved at shutdown from the loop thread.
        self._lock = threading.Lock()
        self._dirty = False

    # -- called on the worker thread -------------------------------------------------------

    def prepare(self) -> Batch | None:
        """Fill a batch; None when the spool has nothing new for this sink.

        Pieces that yield no items (bad lines only, or events this sink ignores) are committed
        on the way, so a sink that ignores most events still moves forward.
        """
        try:
            return self._prepare()
        except BaseException:
            # The reader has read past lines this batch never dealt with (a dead-letter write that
            # failed, a decoder that raised): forget the read-ahead, so the next call starts again
            # at the cursor instead of skipping them.
            self.rewind()
            raise

    def _prepare(self) -> Batch | None:
        batch = Batch()
        lingered = self.linger <= 0
        while len(batch.items) < self.max_batch:
            piece = self.reader.read(self.max_batch - len(batch.items))
            if piece is None:
                if batch.items and not lingered:
                    lingered = True
                    time.sleep(self.linger)
                    continue
                break
            batch.pieces.append(piece)
            if piece.kind == "lines":
                self._translate(piece, batch)
            else:
                self.undeliverable.anomaly(piece)
            if not batch.items:  # nothing to deliver so far: no need to hold these pieces
                self._commit_quietly(batch.pieces)
                batch.pieces.clear()
        return batch if batch.items else None

    def _translate(self, piece: SegmentSlice, batch: Batch) -> None:
        translate = self.sink.translate
        items = batch.items
        origins = batch.origins
        failed: list[tuple[int, str]] = []
        events = 0
        for index, event in self.undeliverable.each_event(piece):
            events += 1
            try:
                produced = translate(event)
            except Exception as exc:
                failed.append((index, f"{type(exc).__name__}: {exc}"))
                continue
            if len(produced) == 1:
                items.append(produced[0])
                origins.append((piece, index))
            elif produced:
                items.extend(produced)
                origins.extend([(piece, index)] * len(produced))
        batch.events += events
        if failed:
            self.dead_lettered += self.undeliverable.translate_failed(piece, failed, self.name)
            log.error(
                "translation failed; event dead-lettered",
                extra={"sink": self.name, "count": len(failed), "error": failed[0][1]},
            )

    def deliver(self, batch: Batch) -> tuple[int, int]:
        """``deliver`` the batch and commit it: (items delivered, items rejected).

        One call on the worker thread for both, the common case; if ``deliver`` raises, nothing
        is committed and the exception goes to the runner, which retries. If saving the cursor
        fails after a successful ``deliver``, the batch is retried too: delivered twice, never
        skipped.
        """
        try:
            rejections = self.sink.deliver(batch.items)
        except Exception as exc:
            if not is_permanent(exc):
                raise
            rejections = self._isolate(batch.items, exc)
        delivered = self.commit(batch, rejections, None)
        return delivered, len(batch.items) - delivered

    def _isolate(self, items: list[Any], error: BaseException) -> list[Rejection]:
        """``deliver`` failed permanently: split the batch until the items at fault are alone,
        reject those, deliver the rest. A retryable failure on the way raises (the whole batch is
        retried: delivered twice, never skipped)."""
        log.warning(
            "delivery failed permanently; finding the items at fault",
            extra={"sink": self.name, "items": len(items), "error": _describe(error)},
        )
        rejections = self._bisect(items, 0, error)
        if rejections and self._stateful:
            # A stateful sink's deliver builds on its committed state: deliver the survivors once
            # more, together, so the checkpoint holds all of them (not the last half only).
            bad = {r.index for r in rejections}
            kept = [i for i in range(len(items)) if i not in bad]
            if kept:
                again = self.sink.deliver([items[i] for i in kept])
                rejections += [Rejection(kept[r.index], r.reason) for r in again]
        return rejections

    def _bisect(self, items: list[Any], start: int, error: BaseException) -> list[Rejection]:
        if len(items) == 1:
            return [Rejection(start, f"permanent error: {_describe(error)}")]
        middle = len(items) // 2
        out: list[Rejection] = []
        for part, first in ((items[:middle], start), (items[middle:], start + middle)):
            try:
                found = self.sink.deliver(part)
            except Exception as exc:
                if not is_permanent(exc):
                    raise
                out += self._bisect(part, first, exc)
                continue
            out += [Rejection(first + r.index, r.reason) for r in found]
        return out

    def commit(self, batch: Batch, rejections: Sequence[Rejection], gave_up: str | None) -> int:
        """After ``deliver`` returned (or retries gave up): dead-letter, then save the cursor.

        Returns the number of items counted as delivered.
        """
        if gave_up is not None:
            indexes = list(range(len(batch.items)))
            kind, reasons = "gave_up", [gave_up] * len(indexes)
        else:
            valid = [r for r in rejections if 0 <= r.index < len(batch.items)]
            if len(valid) != len(rejections):
                log.warning(
                    "deliver rejected items that are not in the batch; ignored",
                    extra={"sink": self.name, "batch": len(batch.items)},
                )
            indexes = [r.index for r in valid]
            kind, reasons = "rejected", [r.reason for r in valid]
        refused = [
            (index, *batch.origins[index], reason)
            for index, reason in zip(indexes, reasons, strict=True)
        ]
        if refused:
            self.dead_lettered += self.undeliverable.refused(
                refused, kind=kind, batch_size=len(batch.items), sink=self.name
            )
        delivered = len(batch.items) - len(refused)
        with self._lock:
            cursor = self.cursor
            gone = self.reader.gone()
            state = cursor.state
            if self._stateful:
                checkpoint = self.sink.checkpoint()  # type: ignore[attr-defined]
                state = msgspec.Raw(checkpoint) if checkpoint is not None else NO_STATE
            updated = Cursor(
                owner=cursor.owner,
                positions=self._advanced(batch.pieces, gone),
                delivered=cursor.delivered + delivered,
                dead_lettered=cursor.dead_lettered + len(refused),
                created_at=cursor.created_at,
                state=state,
            )
            save_cursor(self.cursor_path, updated)  # if this raises, nothing moved
            self.cursor = updated
            self.reader.pruned(gone)
            self._dirty = False
            if self._stateful:
                self.sink.committed()  # type: ignore[attr-defined]
        return delivered

    def _restore_state(self) -> None:
        if self._stateful:
            state = bytes(self.cursor.state)
            self.sink.restore(None if state in (b"", b"null") else state)  # type: ignore[attr-defined]

    def close_sink(self) -> None:
        self.reader.close()  # the spool directory's descriptor
        self.sink.close()

    # -- cursor ----------------------------------------------------------------------------

    def _on_reset(self, segment: str, reason: str, inode: int) -> None:
        self.undeliverable.segment_reset(segment, reason, inode)
        log.warning(
            "segment %s; reading it again from the start",
            reason,
            extra={"sink": self.name, "segment": segment},
        )

    def _advanced(
        self, pieces: Sequence[SegmentSlice], gone: set[str]
    ) -> dict[str, SegmentPosition]:
        positions = dict(self.cursor.positions)
        for piece in pieces:
            positions[piece.segment] = piece.position()
        for name in gone:
            positions.pop(name, None)
        return positions

    def _commit_quietly(self, pieces: Sequence[SegmentSlice]) -> None:
        """Move past pieces that had nothing to deliver, without an fsync each time.

        Losing such a position in a crash only means reading those lines again, and they yield
        nothing to deliver; so they are saved lazily (when idle, and at shutdown).
        """
        with self._lock:
            gone = self.reader.gone()
            self.cursor.positions = self._advanced(pieces, gone)
            self.reader.pruned(gone)
            self._dirty = True

    def rewind(self) -> None:
        """Forget what was read ahead and read again from the saved positions (after a crash of
        the runner: whatever it was doing, the cursor is the truth)."""
        with self._lock:
            self.reader.close()
            self.reader = SpoolReader(
                self.reader.spool_dir,
                self.cursor.positions,
                max_line_bytes=self.max_line_bytes,
                on_reset=self._on_reset,
                on_refused=self.undeliverable.not_followed,
            )
            self._restore_state()

    def seed(self, segment: str, position: SegmentPosition) -> None:
        """Start ``segment`` at ``position``: another sidecar delivered this sink's items up to
        there (a hand-off, :mod:`floe_sidecar.engine.handoff`). Only for a segment that is not in
        the spool yet; the position is saved with the cursor's next save."""
        with self._lock:
            self.cursor.positions[segment] = position
            self.reader.seed(segment, position)
            self._dirty = True

    def save_if_dirty(self) -> None:
        with self._lock:
            if self._dirty:
                save_cursor(self.cursor_path, self.cursor)
                self._dirty = False

    def positions(self) -> dict[str, SegmentPosition]:
        with self._lock:
            return dict(self.cursor.positions)

    def sealed_ends(self) -> dict[str, SealedEnd]:
        """Segments this sink's reader found sealed and read to the end (for retention)."""
        with self._lock:  # not while rewind() swaps the reader
            return self.reader.sealed_ends()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
