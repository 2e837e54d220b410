"""The synchronous half of one consumer of the spool: read, decode, translate, batch, commit.

Everything here runs on the consumer's own worker thread (:mod:`floe_sidecar.worker`), so neither
decoding nor a sink's translation ever stalls the event loop that serves the socket. The async half
(:mod:`floe_sidecar.runner`) decides when to call what: retries, backoff, wake-ups, shutdown.

Two kinds of consumers share the spool reader:

* :class:`SinkPipeline`, one per sink: lines that do not decode are skipped here (the validator
  reports them), events become the sink's items, items are delivered in batches of at most
  ``max_batch``, and the cursor is saved only after ``deliver`` returned;
* :class:`Validator`, one per sidecar: decodes every line and dead-letters each bad one exactly
  once, with the reason and its position (segment + byte offset), so N sinks do not report it N
  times.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floe_core.events import EventError, decode_event
from floe_core.transport import MAX_LINE_BYTES
from floe_sidecar.cursor import Cursor, load_cursor, save_cursor
from floe_sidecar.deadletter import OVERSIZED_HEAD_BYTES, DeadLetter, DeadLetterRecord
from floe_sidecar.reader import Span, SpoolReader
from floe_sidecar.sinks.base import Rejection, Sink

__all__ = ["Batch", "Consumer", "SinkPipeline", "Validator"]

log = logging.getLogger("floe_sidecar.pipeline")


@dataclass(slots=True)
class Batch:
    """Items ready for one ``deliver`` call, and where they came from."""

    items: list[Any] = field(default_factory=list)
    # For each item, the span and line index of the event it was translated from.
    origins: list[tuple[Span, int]] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    events: int = 0
    # When the oldest event in the batch was read: how long it waited shows in the status.
    read_at: float = 0.0


class Consumer:
    """What sink pipelines and the validator share: a reader and a cursor guarded by a lock."""

    name: str

    def __init__(
        self,
        name: str,
        spool_dir: Path,
        cursor_path: Path,
        deadletter: DeadLetter,
        *,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.name = name
        self.cursor_path = cursor_path
        self.deadletter = deadletter
        self.max_line_bytes = max_line_bytes
        self.cursor: Cursor = load_cursor(cursor_path, name)
        self.reader = SpoolReader(
            spool_dir,
            self.cursor.positions,
            max_line_bytes=max_line_bytes,
            on_reset=self._on_reset,
        )
        # The cursor is changed on the worker thread and saved at shutdown from the loop thread.
        self._lock = threading.Lock()
        self._dirty = False
        self.dead_lettered = 0

    def _on_reset(self, segment: str, reason: str) -> None:
        log.warning(
            "segment %s; reading it again from the start",
            reason,
            extra={"consumer": self.name, "segment": segment},
        )

    def _advance(self, spans: Sequence[Span]) -> None:
        positions = self.cursor.positions
        for span in spans:
            positions[span.segment] = span.position()
        for gone in self.reader.take_gone():
            positions.pop(gone, None)

    def save(self, *, durable: bool = True) -> None:
        with self._lock:
            save_cursor(self.cursor_path, self.cursor, durable=durable)
            self._dirty = False

    def save_if_dirty(self) -> None:
        """Persist progress over lines that produced nothing to deliver (lazy, see below)."""
        if self._dirty:
            self.save()

    def commit_quietly(self, spans: Sequence[Span]) -> None:
        """Move past spans that had nothing to deliver, without an fsync each time.

        Losing such a position in a crash only means reading those lines again, and they yield
        nothing to deliver; so they are saved lazily (when idle, and at shutdown).
        """
        with self._lock:
            self._advance(spans)
            self._dirty = True


class SinkPipeline(Consumer):
    def __init__(
        self,
        sink: Sink[Any],
        spool_dir: Path,
        cursor_path: Path,
        deadletter: DeadLetter,
        *,
        max_line_bytes: int = MAX_LINE_BYTES,
        linger: float = 0.0,
    ) -> None:
        super().__init__(
            sink.name, spool_dir, cursor_path, deadletter, max_line_bytes=max_line_bytes
        )
        self.sink = sink
        self.max_batch = max(1, int(sink.max_batch))
        self.linger = linger
        self.translate_errors = 0

    # -- called on the worker thread -------------------------------------------------------

    def prepare(self) -> Batch | None:
        """Fill a batch; None when the spool has nothing new for this sink.

        Spans that yield no items (all lines bad, or the sink ignores those events) are
        committed on the way, so a sink that ignores most events still moves forward.
        """
        batch = Batch()
        lingered = self.linger <= 0
        while len(batch.items) < self.max_batch:
            span = self.reader.read(self.max_batch - len(batch.items))
            if span is None:
                if batch.items and not lingered:
                    lingered = True
                    time.sleep(self.linger)
                    continue
                break
            if not batch.spans:
                batch.read_at = time.monotonic()
            batch.spans.append(span)
            if span.kind == "lines":
                self._translate(span, batch)
            if not batch.items:  # nothing to deliver so far: no need to hold these spans
                self.commit_quietly(batch.spans)
                batch.spans.clear()
        return batch if batch.items else None

    def _translate(self, span: Span, batch: Batch) -> None:
        translate = self.sink.translate
        items = batch.items
        origins = batch.origins
        max_line = self.max_line_bytes
        errors: list[DeadLetterRecord] = []
        for index, line in enumerate(span.lines):
            if len(line) > max_line:
                continue  # the validator dead-letters it
            try:
                event = decode_event(line)
            except EventError:
                continue  # the validator dead-letters it
            batch.events += 1
            try:
                produced = translate(event)
            except Exception as exc:
                errors.append(
                    DeadLetterRecord(
                        kind="translate_error",
                        reason=f"{type(exc).__name__}: {exc}",
                        segment=span.segment,
                        offset=span.offsets()[index],
                        line=line,
                        sink=self.name,
                    )
                )
                continue
            if produced:
                items.extend(produced)
                origins.extend([(span, index)] * len(produced))
        if errors:
            # Durable before the batch commits: a translation bug never loses the event.
            self.translate_errors += len(errors)
            self.dead_lettered += self.deadletter.write(errors)
            log.error(
                "translation failed; event dead-lettered",
                extra={"sink": self.name, "count": len(errors), "error": errors[0].reason},
            )

    def deliver(self, batch: Batch) -> Sequence[Rejection]:
        return self.sink.deliver(batch.items)

    def commit(self, batch: Batch, rejections: Sequence[Rejection], gave_up: str | None) -> int:
        """After ``deliver`` returned (or retries gave up): dead-letter, then save the cursor.

        Returns the number of items counted as delivered.
        """
        records = []
        if gave_up is not None:
            records = [
                self._item_record(batch, i, "gave_up", gave_up) for i in range(len(batch.items))
            ]
            delivered = 0
        else:
            for rejection in rejections:
                if 0 <= rejection.index < len(batch.items):
                    records.append(
                        self._item_record(batch, rejection.index, "rejected", rejection.reason)
                    )
            delivered = len(batch.items) - len(records)
        if records:
            self.dead_lettered += self.deadletter.write(records)
        with self._lock:
            self._advance(batch.spans)
            self.cursor.delivered += delivered
            self.cursor.dead_lettered += len(records)
            save_cursor(self.cursor_path, self.cursor)
            self._dirty = False
        return delivered

    def _item_record(self, batch: Batch, index: int, kind: str, reason: str) -> DeadLetterRecord:
        span, line_index = batch.origins[index]
        return DeadLetterRecord(
            kind=kind,
            reason=f"item {index} of a batch of {len(batch.items)}: {reason}",
            segment=span.segment,
            offset=span.offsets()[line_index],
            line=span.lines[line_index],
            sink=self.name,
        )

    def close_sink(self) -> None:
        self.sink.close()


class Validator(Consumer):
    """Dead-letters every line no sink can use, once, before any sink has to skip it."""

    SPAN_LINES = 4096

    def step(self) -> int | None:
        """Check the next span; the number of lines checked, or None when caught up."""
        span = self.reader.read(self.SPAN_LINES)
        if span is None:
            return None
        records = self._check(span)
        if records:
            self.dead_lettered += self.deadletter.write(records)
            with self._lock:
                self._advance([span])
                self.cursor.dead_lettered += len(records)
                save_cursor(self.cursor_path, self.cursor)
                self._dirty = False
        else:
            self.commit_quietly([span])
        return max(1, len(span.lines))

    def _check(self, span: Span) -> list[DeadLetterRecord]:
        if span.kind == "oversized":
            return [
                DeadLetterRecord(
                    kind="oversized",
                    reason=(
                        f"line of {span.length} bytes exceeds the {self.max_line_bytes}-byte "
                        f"limit; only its first {len(span.head)} bytes are kept"
                    ),
                    segment=span.segment,
                    offset=span.start,
                    line=span.head,
                    length=span.length,
                )
            ]
        if span.kind == "fragment":
            return [
                DeadLetterRecord(
                    kind="fragment",
                    reason="the segment is sealed but ends in the middle of a line",
                    segment=span.segment,
                    offset=span.start,
                    line=span.head,
                )
            ]
        records: list[DeadLetterRecord] = []
        max_line = self.max_line_bytes
        offset = span.start
        for line in span.lines:
            if len(line) > max_line:
                records.append(
                    DeadLetterRecord(
                        kind="oversized",
                        reason=(
                            f"line of {len(line)} bytes exceeds the {max_line}-byte limit; "
                            "only its head is kept"
                        ),
                        segment=span.segment,
                        offset=offset,
                        line=line[:OVERSIZED_HEAD_BYTES],
                        length=len(line),
                    )
                )
            else:
                try:
                    decode_event(line)
                except EventError as exc:
                    if line.strip():  # blank lines carry nothing: skipped quietly
                        records.append(
                            DeadLetterRecord(
                                kind="bad_line",
                                reason=str(exc),
                                segment=span.segment,
                                offset=offset,
                                line=line,
                            )
                        )
            offset += len(line) + 1
        return records
