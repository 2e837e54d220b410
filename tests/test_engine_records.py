"""What the sidecar writes down about lines it cannot deliver, exactly, and the reader's own
bookkeeping (seeds, resets, deletions), called directly on the test's thread.

The engine tests run these paths on sink worker threads; here each record is checked field by
field (what an operator reads in the dead-letter file to find and replay a line), and each
count in a status is checked where it can be off by one.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from support.data import event_id_of, event_line
from support.sidecar import write_spool

from floe_core.errors import DeliveryError
from floe_core.events import Event
from floe_core.fsutil import fsync_dir
from floe_core.spool import SpoolWriter, is_sealed, list_segments
from floe_sidecar.engine import deadletter as deadletter_module
from floe_sidecar.engine import retention
from floe_sidecar.engine.cursor import SegmentPosition, fingerprint, load_cursor
from floe_sidecar.engine.deadletter import DeadLetter, count_records, read_deadletter
from floe_sidecar.engine.pipeline import SinkPipeline
from floe_sidecar.engine.reader import SegmentSlice, SpoolReader
from floe_sidecar.engine.undeliverable import Undeliverable
from floe_sidecar.sinks.base import Rejection
from floe_sidecar.sinks.file import FileSink

SEGMENT = "20260101T000000.000000001-adapter-1-aaaaaa.ndjson"


def _records(path: Path) -> list[dict[str, object]]:
    return [{k: v for k, v in r.items() if k != "at"} for r in read_deadletter(path)]


def _owner(tmp_path: Path) -> tuple[Undeliverable, Path]:
    dead = tmp_path / "dead.ndjson"
    return Undeliverable(DeadLetter(dead), tmp_path / "reported.json", 1024), dead


def _piece(lines: list[bytes], start: int = 10) -> SegmentSlice:
    end = start + sum(len(line) + 1 for line in lines)
    return SegmentSlice(SEGMENT, start, end, 7, 8, "fp", 2, lines)


# -- the owner of undeliverable lines ----------------------------------------------------------


def test_a_translation_failure_records_the_line_where_it_is_and_which_sink_failed(
    tmp_path: Path,
) -> None:
    owner, dead = _owner(tmp_path)
    piece = _piece([b'{"a": 1}', b'{"bb": 22}', b'{"c": 3}'])
    assert owner.translate_failed(piece, [(1, "KeyError: 'x'"), (2, "boom")], "lineage") == 2
    assert _records(dead) == [
        {
            "kind": "translate_error",
            "reason": "KeyError: 'x'",
            "sink": "lineage",
            "segment": SEGMENT,
            "offset": 19,
            "length": 10,
            "truncated": False,
            "line": '{"bb": 22}',
        },
        {
            "kind": "translate_error",
            "reason": "boom",
            "sink": "lineage",
            "segment": SEGMENT,
            "offset": 30,
            "length": 8,
            "truncated": False,
            "line": '{"c": 3}',
        },
    ]


def test_a_reset_segment_is_noted_once_per_file_and_kind_and_read_again_from_zero(
    tmp_path: Path,
) -> None:
    owner, dead = _owner(tmp_path)
    owner.cursor.positions[SEGMENT] = SegmentPosition(ino=7, dev=8, offset=100)
    owner.segment_reset(SEGMENT, "truncated to 3 bytes, below position 100", 7)
    assert SEGMENT not in owner.positions()  # its bad lines are new: reported again
    owner.save_if_dirty()
    assert SEGMENT not in load_cursor(tmp_path / "reported.json", "reported").positions
    # the same file truncated again (other sizes): no second note; replaced: a note of its own
    owner.segment_reset(SEGMENT, "truncated to 1 bytes, below position 3", 7)
    owner.segment_reset(SEGMENT, "replaced (inode changed)", 7)
    owner.segment_reset(SEGMENT, "replaced (inode changed)", 9)  # the next file under the name
    reason = (
        "; read again from offset 0 (its lines may be delivered twice, or be lost if they were "
        "cut off before delivery)"
    )
    assert _records(dead) == [
        {
            "kind": "note",
            "reason": f"segment truncated to 3 bytes, below position 100{reason}",
            "sink": None,
            "segment": SEGMENT,
            "offset": 0,
        },
        {
            "kind": "note",
            "reason": f"segment replaced (inode changed){reason}",
            "sink": None,
            "segment": SEGMENT,
            "offset": 0,
        },
        {
            "kind": "note",
            "reason": f"segment replaced (inode changed){reason}",
            "sink": None,
            "segment": SEGMENT,
            "offset": 0,
        },
    ]
    assert owner.reported == 3


def test_a_seeded_mark_is_saved_and_spares_the_lines_below_it(tmp_path: Path) -> None:
    """A hand-off: the pod's sidecar dead-lettered the bad lines below the mark already."""
    owner, dead = _owner(tmp_path)
    piece = _piece([b"not json", b"also not json"], start=0)
    owner.seed(SEGMENT, SegmentPosition(ino=7, dev=8, offset=9))
    owner.save_if_dirty()
    saved = load_cursor(tmp_path / "reported.json", "reported").positions[SEGMENT]
    assert (saved.ino, saved.dev, saved.offset) == (7, 8, 9)
    assert owner.events(piece) == []
    assert [r["line"] for r in _records(dead)] == ["also not json"]  # the first was below


def test_an_adopted_entry_that_is_not_a_segment_is_noted_with_where_it_was(
    tmp_path: Path,
) -> None:
    owner, dead = _owner(tmp_path)
    owner.not_a_segment(tmp_path / "pod", SEGMENT)
    owner.not_a_segment(tmp_path / "pod", SEGMENT)  # every adoption that meets it says so
    expected = {
        "kind": "note",
        "reason": f"{tmp_path / 'pod'}: {SEGMENT} is not a regular file (never followed); "
        "removed from the pod's spool",
        "sink": None,
        "segment": SEGMENT,
        "offset": None,
    }
    assert _records(dead) == [expected, expected]
    assert owner.reported == 2


def test_an_anomaly_records_a_fragment_once(tmp_path: Path) -> None:
    owner, dead = _owner(tmp_path)
    fragment = SegmentSlice(SEGMENT, 4, 9, 7, 8, "fp", 2, kind="fragment", head=b"{tor", length=4)
    owner.anomaly(fragment)
    owner.anomaly(fragment)  # a second sink reads the same fragment
    assert _records(dead) == [
        {
            "kind": "fragment",
            "reason": "the segment is sealed but ends in the middle of a line",
            "sink": None,
            "segment": SEGMENT,
            "offset": 4,
            "length": 4,
            "truncated": False,
            "line": "{tor",
        }
    ]


# -- the dead-letter file ----------------------------------------------------------------------


def test_an_explicit_dead_letter_path_through_a_link_is_written_through_it(
    tmp_path: Path,
) -> None:
    """--dead-letter is the operator's own choice: a link there is followed (the default file
    under the spool never is)."""
    target = tmp_path / "real.ndjson"
    target.write_bytes(b"")
    link = tmp_path / "dead.ndjson"
    link.symlink_to(target)
    assert DeadLetter(link, follow_symlinks=True).absorb(b'{"kind": "note"}') == 1
    assert target.read_bytes() == b'{"kind": "note"}\n'
    with pytest.raises(OSError):
        DeadLetter(link, follow_symlinks=False).absorb(b'{"kind": "note"}\n')


def test_records_are_counted_across_reads_without_a_last_newline_and_never_from_a_fifo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deadletter_module, "COUNT_READ_BYTES", 4)  # many reads per file
    path = tmp_path / "dead.ndjson"
    assert count_records(path) == 0  # none yet
    path.write_bytes(b"")
    assert count_records(path) == 0
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": 3}\n')
    assert count_records(path) == 3
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": 3')  # torn last record
    assert count_records(path) == 3
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    counted: list[int] = []
    reader = threading.Thread(target=lambda: counted.append(count_records(fifo)), daemon=True)
    reader.start()
    reader.join(5)  # opening a FIFO without O_NONBLOCK waits for a writer forever
    assert counted == [0]
    assert count_records(Path(os.devnull)) == 0


# -- the reader's bookkeeping ------------------------------------------------------------------


def _spool_segment(spool: Path, data: bytes) -> Path:
    spool.mkdir(mode=0o700, exist_ok=True)
    path = spool / SEGMENT
    path.write_bytes(data)
    return path


def test_a_seeded_segment_is_read_from_the_seed_on(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    reader = SpoolReader(spool, {})
    assert reader.read(10) is None
    path = _spool_segment(spool, b"one\ntwo\nthree\n")
    st = path.stat()
    head = fingerprint(b"one\ntwo\nthree\n")
    seed = SegmentPosition(ino=st.st_ino, dev=st.st_dev, offset=4, fp=head, fp_len=14)
    reader.seed(SEGMENT, seed)
    piece = reader.read(10)
    assert piece is not None
    assert (piece.lines, piece.start, piece.end) == ([b"two", b"three"], 4, 14)
    assert (piece.ino, piece.dev, piece.fp, piece.fp_len) == (st.st_ino, st.st_dev, head, 14)


def test_a_seed_with_a_fingerprint_that_does_not_match_reads_the_file_from_zero(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    path = _spool_segment(spool, b"one\ntwo\n")
    st = path.stat()
    resets: list[tuple[str, str, int]] = []
    reader = SpoolReader(spool, {}, on_reset=lambda *a: resets.append(a))
    other = fingerprint(b"xyz\n")
    reader.seed(
        SEGMENT, SegmentPosition(ino=st.st_ino, dev=st.st_dev, offset=4, fp=other, fp_len=4)
    )
    piece = reader.read(10)
    assert piece is not None and piece.lines == [b"one", b"two"] and piece.start == 0
    assert resets == [(SEGMENT, "replaced (first bytes changed)", st.st_ino)]


def test_a_replaced_segment_is_reported_with_the_new_files_inode(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    old = _spool_segment(spool, b"a\n")
    keep = tmp_path / "keep"
    os.link(old, keep)  # the old inode lives on: the new file gets another
    st_old = old.stat()
    resets: list[tuple[str, str, int]] = []
    position = SegmentPosition(ino=st_old.st_ino, dev=st_old.st_dev, offset=2)
    reader = SpoolReader(spool, {SEGMENT: position}, on_reset=lambda *a: resets.append(a))
    (spool / ".new").write_bytes(b"b\n")
    os.replace(spool / ".new", old)
    piece = reader.read(10)
    assert piece is not None and piece.lines == [b"b"]
    assert resets == [(SEGMENT, "replaced (inode changed)", old.stat().st_ino)]
    assert old.stat().st_ino != st_old.st_ino


def test_a_segment_deleted_under_the_reader_is_reported_gone_once_pruned(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    path = _spool_segment(spool, b"a\n")
    reader = SpoolReader(spool, {})
    assert reader.read(10) is not None
    assert reader.sealed_ends()
    path.unlink()
    with SpoolWriter(spool) as writer:  # something new to list the directory again for
        writer.append(b"b\n")
    piece = reader.read(10)
    assert piece is not None and piece.lines == [b"b"]
    assert reader.gone() == {SEGMENT}
    assert SEGMENT not in reader.sealed_ends()
    reader.pruned({SEGMENT})
    assert reader.gone() == set()


def test_an_oversized_line_at_the_end_of_a_sealed_segment_is_skipped_whole(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    big = b"x" * 300
    _spool_segment(spool, b"ok\n" + big)  # sealed, ends inside the long line
    reader = SpoolReader(spool, {}, max_line_bytes=100, chunk_bytes=128)
    first = reader.read(10)
    assert first is not None and first.lines == [b"ok"]
    piece = reader.read(10)
    assert piece is not None and piece.kind == "oversized"
    assert (piece.segment, piece.start, piece.end, piece.length) == (SEGMENT, 3, 303, 300)
    assert piece.head == big[: len(piece.head)] and piece.head
    assert reader.read(10) is None


def test_an_oversized_line_whose_newline_starts_the_next_block_ends_there(
    tmp_path: Path,
) -> None:
    """The newline is the first byte of a block read past the first chunk."""
    spool = tmp_path / "spool"
    chunk = 128
    big = b"y" * (chunk * 2)
    _spool_segment(spool, big + b"\nnext\n")
    reader = SpoolReader(spool, {}, max_line_bytes=100, chunk_bytes=chunk)
    piece = reader.read(10)
    assert piece is not None and piece.kind == "oversized"
    assert (piece.start, piece.end, piece.length) == (0, len(big) + 1, len(big))
    after = reader.read(10)
    assert after is not None and after.lines == [b"next"] and after.start == len(big) + 1


def test_a_sink_pipeline_notes_a_reset_with_its_inode_and_saves_a_seed(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    path = _spool_segment(spool, b"")
    owner, dead = _owner(tmp_path)
    pipeline = SinkPipeline(
        FileSink(tmp_path / "out.ndjson"), spool, tmp_path / "cursor.json", owner
    )
    pipeline._on_reset(SEGMENT, "replaced (inode changed)", 42)
    [note] = _records(dead)
    assert note["segment"] == SEGMENT and str(note["reason"]).startswith(
        "segment replaced (inode changed); read again"
    )
    assert SEGMENT not in owner.positions()
    path.write_bytes(b'{"x": 1}\n')
    st = path.stat()
    pipeline.seed(SEGMENT, SegmentPosition(ino=st.st_ino, dev=st.st_dev, offset=9))
    pipeline.save_if_dirty()
    saved = load_cursor(tmp_path / "cursor.json", "file").positions[SEGMENT]
    assert (saved.ino, saved.offset) == (st.st_ino, 9)
    assert pipeline.prepare() is None  # read from the seed: nothing left


# -- small file-system promises -----------------------------------------------------------------


def test_fsync_dir_refuses_a_file_and_a_missing_segment_counts_as_sealed(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        fsync_dir(plain)
    fsync_dir(tmp_path)
    assert is_sealed(tmp_path / "gone.ndjson")  # nobody will ever write it again


def test_retention_never_unlinks_a_link_swapped_in_after_its_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between retention's ``lstat`` and its open, the segment is replaced by a link: the open
    refuses to follow it, and neither the link nor its target is touched."""
    spool = tmp_path / "spool"
    path = _spool_segment(spool, b"a\n")
    st = path.stat()
    target = tmp_path / "secret"
    target.write_bytes(b"keep\n")
    real_stat = os.stat

    def stat_then_swap(name: str | Path, *args: object, **kwargs: object) -> os.stat_result:
        result = real_stat(name, *args, **kwargs)  # type: ignore[arg-type]
        if str(name) == SEGMENT:
            os.unlink(path)
            path.symlink_to(target)
        return result

    monkeypatch.setattr(retention.os, "stat", stat_then_swap)
    done = {SEGMENT: SegmentPosition(ino=st.st_ino, dev=st.st_dev, offset=st.st_size)}
    assert retention.retire_segments(spool, [done]) == []
    monkeypatch.undo()
    assert path.is_symlink() and target.read_bytes() == b"keep\n"


def test_a_cursor_that_is_a_link_is_set_aside_never_read_through(tmp_path: Path) -> None:
    """The cursors live in the shared spool volume: a planted link is not followed (its target
    could be any file of the sidecar's), it is moved aside and the sink starts over."""
    from floe_sidecar.engine.cursor import Cursor, save_cursor

    elsewhere = tmp_path / "elsewhere.json"
    save_cursor(elsewhere, Cursor(owner="x", delivered=41))  # a valid cursor: still not trusted
    before = elsewhere.read_bytes()
    cursors = tmp_path / "cursors"
    cursors.mkdir()
    link = cursors / "file.json"
    link.symlink_to(elsewhere)
    cursor = load_cursor(link, "file")
    assert cursor.delivered == 0 and cursor.positions == {}
    [aside] = [p for p in cursors.iterdir() if p.name.startswith("file.json.corrupt-")]
    assert aside.is_symlink() and not link.exists()
    assert elsewhere.read_bytes() == before


# -- a sink's pipeline, called directly -----------------------------------------------------------


class ListSink:
    """A sink in memory: ``per_event`` items for each event (its id, numbered), each deliver call
    recorded; ``poison`` items make deliver raise ``ValueError`` (an item no exporter can
    encode); ``reject`` answers for a batch."""

    def __init__(self, name: str = "list", max_batch: int = 50, per_event: int = 1) -> None:
        self.name = name
        self.max_batch = max_batch
        self.per_event = per_event
        self.calls: list[list[str]] = []
        self.delivered: list[str] = []
        self.poison: set[str] = set()
        self.down: Exception | None = None
        self.reject: Callable[[Sequence[str]], Sequence[Rejection]] = lambda batch: ()
        self.fail_translate: set[str] = set()
        self.closed = False

    def translate(self, event: Event) -> Sequence[str]:
        if event.event_id in self.fail_translate:
            raise KeyError("boom")
        return [f"{event.event_id}#{n}" for n in range(self.per_event)]

    def deliver(self, batch: Sequence[str]) -> Sequence[Rejection]:
        self.calls.append(list(batch))
        if self.down is not None:
            raise self.down
        if self.poison.intersection(batch):
            raise ValueError(f"cannot encode {sorted(self.poison.intersection(batch))[0]}")
        rejected = self.reject(batch)
        bad = {r.index for r in rejected}
        self.delivered += [x for i, x in enumerate(batch) if i not in bad]
        return rejected

    def close(self) -> None:
        self.closed = True


class StateSink(ListSink):
    """A stateful sink: its state is the list of what it delivered, committed or not."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.restored: list[bytes | None] = []
        self.commits = 0

    def restore(self, state: bytes | None) -> None:
        self.restored.append(state)

    def checkpoint(self) -> bytes | None:
        return json.dumps(self.delivered).encode()

    def committed(self) -> None:
        self.commits += 1


def _item(i: int, n: int = 0) -> str:
    return f"{event_id_of(i)}#{n}"


def _pipeline(tmp_path: Path, sink: ListSink, **kw: Any) -> tuple[SinkPipeline, Path]:
    owner, dead = _owner(tmp_path)
    return SinkPipeline(sink, tmp_path / "spool", tmp_path / "cursor.json", owner, **kw), dead


def test_a_pipeline_batches_at_most_max_batch_items_and_counts_them_in_its_cursor(
    tmp_path: Path,
) -> None:
    write_spool(tmp_path / "spool", 5)
    sink = ListSink(max_batch=2)
    pipeline, _ = _pipeline(tmp_path, sink)
    created = pipeline.cursor.created_at
    sizes = []
    while (batch := pipeline.prepare()) is not None:
        sizes.append((len(batch.items), batch.events))
        assert pipeline.deliver(batch) == (len(batch.items), 0)
    assert sizes == [(2, 2), (2, 2), (1, 1)]
    assert sink.delivered == [_item(i) for i in range(5)]
    saved = load_cursor(tmp_path / "cursor.json", "list")
    assert (saved.owner, saved.delivered, saved.dead_lettered) == ("list", 5, 0)
    assert saved.created_at == created
    assert pipeline.positions() == saved.positions


def test_a_batch_filled_from_several_segments_still_holds_at_most_max_batch_items(
    tmp_path: Path,
) -> None:
    """A segment that ends part-way through a batch leaves room for only what is missing: the
    next segment is read for that many lines, never for a whole batch more."""
    write_spool(tmp_path / "spool", 2)
    write_spool(tmp_path / "spool", 10, start=2)
    assert len(list_segments(tmp_path / "spool")) == 2
    sink = ListSink(max_batch=5)
    pipeline, _ = _pipeline(tmp_path, sink)
    sizes = []
    while (batch := pipeline.prepare()) is not None:
        sizes.append(len(batch.items))
        pipeline.deliver(batch)
    assert sizes == [5, 5, 2]
    assert sink.delivered == [_item(i) for i in range(12)]


def test_a_sink_asking_for_batches_of_zero_gets_batches_of_one(tmp_path: Path) -> None:
    write_spool(tmp_path / "spool", 2)
    pipeline, _ = _pipeline(tmp_path, ListSink(max_batch=0))
    batch = pipeline.prepare()
    assert batch is not None and batch.items == [_item(0)]


def test_a_lingering_pipeline_waits_once_for_more_before_delivering_a_part_batch(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    write_spool(spool, 1)
    pipeline, _ = _pipeline(tmp_path, ListSink(), linger=0.6)
    late = threading.Timer(0.1, write_spool, (spool, 1), {"start": 1})
    late.start()
    try:
        batch = pipeline.prepare()
    finally:
        late.join()
    assert batch is not None and batch.items == [_item(0), _item(1)]
    quick, _ = _pipeline(tmp_path / "again", ListSink())
    write_spool(tmp_path / "again" / "spool", 1)
    started = time.monotonic()
    assert quick.prepare() is not None
    assert time.monotonic() - started < 0.3  # no linger: no wait


def test_events_a_sink_ignores_move_its_cursor_lazily(tmp_path: Path) -> None:
    """No item: nothing to deliver, no fsync per piece; the position is saved when idle."""
    write_spool(tmp_path / "spool", 3)
    pipeline, _ = _pipeline(tmp_path, ListSink(per_event=0))
    assert pipeline.prepare() is None
    [(segment, position)] = pipeline.positions().items()
    assert position.offset == (tmp_path / "spool" / segment).stat().st_size
    assert not (tmp_path / "cursor.json").exists()
    pipeline.save_if_dirty()
    assert load_cursor(tmp_path / "cursor.json", "list").positions == {segment: position}
    os.unlink(tmp_path / "cursor.json")
    pipeline.save_if_dirty()  # saved already: not written again
    assert not (tmp_path / "cursor.json").exists()


def test_a_translation_failure_is_dead_lettered_logged_and_the_rest_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_spool(tmp_path / "spool", 3)
    sink = ListSink()
    sink.fail_translate = {event_id_of(1)}
    pipeline, dead = _pipeline(tmp_path, sink)
    with caplog.at_level(logging.INFO, logger="floe_sidecar.engine.pipeline"):
        batch = pipeline.prepare()
    assert batch is not None and batch.items == [_item(0), _item(2)] and batch.events == 3
    [record] = [r for r in caplog.records if r.name == "floe_sidecar.engine.pipeline"]
    assert record.getMessage() == "translation failed; event dead-lettered"
    assert record.levelno == logging.ERROR
    fields = (record.sink, record.count, record.error)  # type: ignore[attr-defined]
    assert fields == ("list", 1, "KeyError: 'boom'")
    [dead_record] = _records(dead)
    assert (dead_record["kind"], dead_record["reason"], dead_record["sink"]) == (
        "translate_error",
        "KeyError: 'boom'",
        "list",
    )
    assert dead_record["line"] == event_line(1).rstrip(b"\n").decode()
    assert pipeline.dead_lettered == 1


def test_every_item_of_a_multi_item_event_points_back_to_its_line(tmp_path: Path) -> None:
    write_spool(tmp_path / "spool", 2)
    sink = ListSink(per_event=3)
    pipeline, _ = _pipeline(tmp_path, sink)
    batch = pipeline.prepare()
    assert batch is not None
    assert batch.items == [_item(i, n) for i in range(2) for n in range(3)]
    assert [index for _, index in batch.origins] == [0, 0, 0, 1, 1, 1]
    assert all(piece is batch.pieces[0] for piece, _ in batch.origins)


def test_a_permanent_failure_is_bisected_to_the_item_at_fault(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_spool(tmp_path / "spool", 5)
    sink = ListSink()
    sink.poison = {_item(3)}
    sink.reject = lambda batch: (
        [Rejection(batch.index(_item(1)), "no")] if _item(1) in batch else []
    )
    pipeline, dead = _pipeline(tmp_path, sink)
    batch = pipeline.prepare()
    assert batch is not None
    with caplog.at_level(logging.INFO, logger="floe_sidecar.engine.pipeline"):
        assert pipeline.deliver(batch) == (3, 2)
    assert sink.delivered == [_item(0), _item(2), _item(4)]
    [record] = [r for r in caplog.records if r.name == "floe_sidecar.engine.pipeline"]
    assert record.getMessage() == "delivery failed permanently; finding the items at fault"
    assert record.levelno == logging.WARNING
    fields = (record.sink, record.items, record.error)  # type: ignore[attr-defined]
    assert fields == ("list", 5, f"ValueError: cannot encode {_item(3)}")
    records = _records(dead)
    assert [(r["kind"], r["reason"], r["line"]) for r in records] == [
        ("rejected", "item 1 of a batch of 5: no", event_line(1).rstrip(b"\n").decode()),
        (
            "rejected",
            f"item 3 of a batch of 5: permanent error: ValueError: cannot encode {_item(3)}",
            event_line(3).rstrip(b"\n").decode(),
        ),
    ]
    saved = load_cursor(tmp_path / "cursor.json", "list")
    assert (saved.delivered, saved.dead_lettered) == (3, 2)
    assert pipeline.dead_lettered == 2


@pytest.mark.parametrize(
    "error", [ConnectionError("endpoint down"), DeliveryError("busy", permanent=False)]
)
def test_a_retryable_failure_raises_and_moves_nothing(tmp_path: Path, error: Exception) -> None:
    write_spool(tmp_path / "spool", 3)
    sink = ListSink()
    sink.down = error
    pipeline, dead = _pipeline(tmp_path, sink)
    batch = pipeline.prepare()
    assert batch is not None
    with pytest.raises(type(error)):
        pipeline.deliver(batch)
    assert len(sink.calls) == 1  # not bisected: the endpoint is at fault, not the items
    assert not (tmp_path / "cursor.json").exists() and not dead.exists()


def test_a_retryable_failure_while_bisecting_raises_the_whole_batch_again(tmp_path: Path) -> None:
    write_spool(tmp_path / "spool", 4)
    sink = ListSink()
    sink.poison = {_item(0)}
    pipeline, dead = _pipeline(tmp_path, sink)
    batch = pipeline.prepare()
    assert batch is not None
    real = sink.deliver

    def deliver(part: Sequence[str]) -> Sequence[Rejection]:
        if len(sink.calls) == 2:  # the second half, while the first is bisected
            sink.calls.append(list(part))
            raise OSError("connection reset")
        return real(part)

    sink.deliver = deliver  # type: ignore[method-assign]
    with pytest.raises(OSError, match="connection reset"):
        pipeline.deliver(batch)
    assert not (tmp_path / "cursor.json").exists() and not dead.exists()


def test_a_stateful_sink_gets_the_survivors_again_together_and_its_state_in_the_cursor(
    tmp_path: Path,
) -> None:
    write_spool(tmp_path / "spool", 4)
    sink = StateSink()
    sink.poison = {_item(1)}
    pipeline, _ = _pipeline(tmp_path, sink)
    assert sink.restored == [None]  # a new cursor: no state
    batch = pipeline.prepare()
    assert batch is not None
    assert pipeline.deliver(batch) == (3, 1)
    assert sink.calls[-1] == [_item(0), _item(2), _item(3)]
    assert sink.commits == 1
    saved = load_cursor(tmp_path / "cursor.json", "list")
    assert json.loads(bytes(saved.state)) == sink.delivered
    again = StateSink()
    SinkPipeline(again, tmp_path / "spool", tmp_path / "cursor.json", _owner(tmp_path)[0])
    assert again.restored == [bytes(saved.state)]


def test_a_pipelines_line_limit_is_its_readers(tmp_path: Path) -> None:
    """The limit the sidecar is configured with (``--max-line-bytes``) is the reader's too: a
    line above the default 1 MiB but within a larger configured limit is delivered, not
    dead-lettered by a reader that kept the default."""
    spool = tmp_path / "spool"
    big = b'{"pad":"' + b"m" * (1536 * 1024) + b'",' + event_line(1)[1:]  # an unknown field
    assert 1024 * 1024 < len(big) < 2 * 1024 * 1024
    with SpoolWriter(spool, prefix="t") as writer:
        writer.append(event_line(0) + big)
    dead = tmp_path / "dead.ndjson"
    owner = Undeliverable(DeadLetter(dead), tmp_path / "reported.json", 4 * 1024 * 1024)
    sink = ListSink()
    pipeline = SinkPipeline(
        sink, spool, tmp_path / "cursor.json", owner, max_line_bytes=4 * 1024 * 1024
    )
    while (batch := pipeline.prepare()) is not None:
        pipeline.deliver(batch)
    assert sink.delivered == [_item(0), _item(1)]
    assert not dead.exists()


def test_a_batch_given_up_is_dead_lettered_whole_and_the_cursor_moves_past_it(
    tmp_path: Path,
) -> None:
    write_spool(tmp_path / "spool", 2)
    pipeline, dead = _pipeline(tmp_path, ListSink(per_event=2))
    batch = pipeline.prepare()
    assert batch is not None
    assert (
        pipeline.commit(batch, [Rejection(0, "ignored when given up")], "gave up: 5 attempts") == 0
    )
    reasons = [(r["kind"], r["reason"]) for r in _records(dead)]
    assert reasons == [
        ("gave_up", f"item {i} of a batch of 4: gave up: 5 attempts") for i in range(4)
    ]
    saved = load_cursor(tmp_path / "cursor.json", "list")
    assert (saved.delivered, saved.dead_lettered) == (0, 4)
    assert pipeline.prepare() is None


def test_rejections_outside_the_batch_are_ignored_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_spool(tmp_path / "spool", 3)
    sink = ListSink()
    sink.reject = lambda batch: [Rejection(3, "past the end"), Rejection(-1, "before it")]
    pipeline, dead = _pipeline(tmp_path, sink)
    batch = pipeline.prepare()
    assert batch is not None
    with caplog.at_level(logging.INFO, logger="floe_sidecar.engine.pipeline"):
        assert pipeline.deliver(batch) == (3, 0)
    [record] = [r for r in caplog.records if r.name == "floe_sidecar.engine.pipeline"]
    assert record.getMessage() == "deliver rejected items that are not in the batch; ignored"
    assert record.levelno == logging.WARNING
    assert (record.sink, record.batch) == ("list", 3)  # type: ignore[attr-defined]
    assert not dead.exists()
    sink.reject = lambda batch: [Rejection(2, "the last one")]
    write_spool(tmp_path / "spool", 3, start=3)
    batch = pipeline.prepare()
    assert batch is not None
    caplog.clear()
    assert pipeline.deliver(batch) == (2, 1)  # the last index is in the batch
    assert not [r for r in caplog.records if r.name == "floe_sidecar.engine.pipeline"]


def test_a_reset_is_logged_with_the_sink_and_segment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, _ = _pipeline(tmp_path, ListSink())
    with caplog.at_level(logging.INFO, logger="floe_sidecar.engine.pipeline"):
        pipeline._on_reset(SEGMENT, "truncated (12 < 40 bytes)", 42)
    [record] = [r for r in caplog.records if r.name == "floe_sidecar.engine.pipeline"]
    assert record.getMessage() == (
        "segment truncated (12 < 40 bytes); reading it again from the start"
    )
    assert record.levelno == logging.WARNING
    assert (record.sink, record.segment) == ("list", SEGMENT)  # type: ignore[attr-defined]


def test_rewind_reads_again_from_the_saved_cursor_and_restores_the_state(tmp_path: Path) -> None:
    write_spool(tmp_path / "spool", 3)
    sink = StateSink(max_batch=1)
    pipeline, _ = _pipeline(tmp_path, sink)
    first = pipeline.prepare()
    assert first is not None
    pipeline.deliver(first)
    ahead = pipeline.prepare()  # read, never delivered (the runner crashed)
    assert ahead is not None and ahead.items == [_item(1)]
    pipeline.rewind()
    again = pipeline.prepare()
    assert again is not None and again.items == [_item(1)]
    assert sink.restored == [None, json.dumps([_item(0)]).encode()]


def test_a_prepare_that_raises_forgets_its_read_ahead(tmp_path: Path) -> None:
    write_spool(tmp_path / "spool", 2)
    sink = ListSink()
    sink.translate = lambda event: (_ for _ in ()).throw(SystemExit(3))  # type: ignore[method-assign]
    pipeline, _ = _pipeline(tmp_path, sink)
    with pytest.raises(SystemExit):
        pipeline.prepare()
    del sink.translate
    batch = pipeline.prepare()
    assert batch is not None and batch.items == [_item(0), _item(1)]


def test_close_sink_closes_the_sink_and_the_spool_descriptor(tmp_path: Path) -> None:
    write_spool(tmp_path / "spool", 2)
    sink = ListSink(max_batch=1)
    pipeline, _ = _pipeline(tmp_path, sink)
    assert pipeline.prepare() is not None  # half-way through the segment: its directory open
    assert pipeline.reader._dir is not None
    pipeline.close_sink()
    assert sink.closed and pipeline.reader._dir is None


def test_a_pipeline_reports_the_segments_it_read_to_their_sealed_end(tmp_path: Path) -> None:
    write_spool(tmp_path / "spool", 2)
    pipeline, _ = _pipeline(tmp_path, ListSink())
    batch = pipeline.prepare()
    assert batch is not None
    pipeline.deliver(batch)
    assert pipeline.prepare() is None
    [(segment, end)] = pipeline.sealed_ends().items()
    assert end == pipeline.reader.sealed_ends()[segment]
    assert (tmp_path / "spool" / segment).exists()


# -- the owner of undeliverable lines: bad lines read from the spool ------------------------------


def test_bad_lines_are_dead_lettered_with_why_and_blank_lines_skipped(tmp_path: Path) -> None:
    owner, dead = _owner(tmp_path)  # lines up to 1,024 bytes
    good = event_line(0).rstrip(b"\n")
    big = b"x" * 1025
    piece = _piece([good, b"", b"   ", b"{not json", big, b"y" * 1024], start=0)
    events = owner.events(piece)
    assert [(index, event.event_id) for index, event in events] == [(0, event_id_of(0))]
    records = _records(dead)
    assert [(r["kind"], r["offset"], r["length"]) for r in records] == [
        ("bad_line", len(good) + 1 + 1 + 4, 9),
        ("oversized", len(good) + 1 + 1 + 4 + 10, 1025),
        ("bad_line", len(good) + 1 + 1 + 4 + 10 + 1026, 1024),  # at the limit: decoded, bad
    ]
    assert records[0]["reason"] != "" and records[0]["line"] == "{not json"
    assert records[1]["reason"] == (
        "line of 1025 bytes exceeds the 1024-byte limit; only its first 1025 bytes are kept"
    )
    assert (owner.reported, owner.written) == (3, 3)
    saved = load_cursor(tmp_path / "reported.json", "reported")  # saved with the records
    assert saved.dead_lettered == 3 and saved.positions[SEGMENT].offset == piece.end
    os.unlink(tmp_path / "reported.json")
    owner.save_if_dirty()  # saved already: the idle save has nothing to write
    assert not (tmp_path / "reported.json").exists()


def test_a_mark_counts_only_for_the_same_file_and_only_below_it(tmp_path: Path) -> None:
    owner, dead = _owner(tmp_path)
    first = _piece([b"{bad", b"{worse"], start=0)
    owner.events(first)
    assert owner.events(first) == [] and len(_records(dead)) == 2  # the second sink: quiet
    # the mark is at 12: a piece that straddles it reports only what lies past it
    straddling = SegmentSlice(SEGMENT, 5, 17, 7, 8, "fp", 2, [b"{worse", b"{new"])
    owner.events(straddling)
    assert [r["line"] for r in _records(dead)] == ["{bad", "{worse", "{new"]
    # another file under the same name (another inode): its bad lines are all new
    other = SegmentSlice(SEGMENT, 0, 5, 70, 8, "fp", 2, [b"{bad"])
    owner.events(other)
    assert [r["line"] for r in _records(dead)][-1] == "{bad" and len(_records(dead)) == 4
    other_dev = SegmentSlice(SEGMENT, 0, 5, 70, 80, "fp", 2, [b"{bad"])
    owner.events(other_dev)
    assert len(_records(dead)) == 5
    assert owner.reported == 5  # the status's count of bad lines, over every call
    assert load_cursor(tmp_path / "reported.json", "reported").dead_lettered == 5


def test_an_oversized_anomaly_is_recorded_once_with_its_length(tmp_path: Path) -> None:
    owner, dead = _owner(tmp_path)
    piece = SegmentSlice(
        SEGMENT, 0, 3001, 7, 8, "fp", 2, kind="oversized", head=b"z" * 100, length=3000
    )
    owner.anomaly(piece)
    owner.anomaly(piece)
    [record] = _records(dead)
    assert (record["kind"], record["offset"], record["length"], record["line"]) == (
        "oversized",
        0,
        3000,
        "z" * 100,
    )
    assert record["reason"] == (
        "line of 3000 bytes exceeds the 1024-byte limit; only its first 100 bytes are kept"
    )
    assert record["truncated"] is True
    after = SegmentSlice(SEGMENT, 3001, 3010, 7, 8, "fp", 2, kind="fragment", head=b"{", length=1)
    owner.anomaly(after)  # starts at the mark: new
    assert len(_records(dead)) == 2


def test_good_lines_move_the_mark_lazily_and_retired_segments_drop_it(tmp_path: Path) -> None:
    owner, _ = _owner(tmp_path)
    piece = _piece([event_line(0).rstrip(b"\n")], start=0)
    owner.events(piece)
    assert not (tmp_path / "reported.json").exists()  # nothing bad: no fsync for it
    owner.save_if_dirty()
    assert load_cursor(tmp_path / "reported.json", "reported").positions[SEGMENT].offset == (
        piece.end
    )
    owner.forget([SEGMENT])
    assert owner.positions() == {}
    owner.save_if_dirty()
    assert load_cursor(tmp_path / "reported.json", "reported").positions == {}
    owner.forget(["another.ndjson"])  # never marked: nothing to save
    os.unlink(tmp_path / "reported.json")
    owner.save_if_dirty()
    assert not (tmp_path / "reported.json").exists()


def test_an_entry_not_followed_is_noted_once(tmp_path: Path) -> None:
    owner, dead = _owner(tmp_path)
    owner.not_followed(SEGMENT, "a symbolic link, refused (never followed)")
    owner.not_followed(SEGMENT, "a symbolic link, refused (never followed)")
    assert [(r["kind"], r["reason"], r["segment"]) for r in _records(dead)] == [
        ("note", "a symbolic link, refused (never followed)", SEGMENT)
    ]
    assert owner.reported == 1


def test_a_reset_forgets_the_saved_mark_so_a_crash_cannot_hide_the_new_files_bad_lines(
    tmp_path: Path,
) -> None:
    owner, _ = _owner(tmp_path)
    owner.events(_piece([b"{bad"], start=0))  # saved with its record: the mark is at 5
    assert SEGMENT in load_cursor(tmp_path / "reported.json", "reported").positions
    owner.segment_reset(SEGMENT, "replaced (inode changed)", 9)
    owner.save_if_dirty()
    assert SEGMENT not in load_cursor(tmp_path / "reported.json", "reported").positions


def test_a_pipeline_notes_each_file_replaced_under_one_name(tmp_path: Path) -> None:
    owner, dead = _owner(tmp_path)
    pipeline = SinkPipeline(ListSink(), tmp_path / "spool", tmp_path / "cursor.json", owner)
    pipeline._on_reset(SEGMENT, "replaced (inode changed)", 42)
    pipeline._on_reset(SEGMENT, "replaced (inode changed)", 42)  # a second sink: the same file
    pipeline._on_reset(SEGMENT, "replaced (inode changed)", 43)  # the next file
    assert len(_records(dead)) == 2


def test_a_seeded_pipeline_delivers_only_what_lies_past_the_seed(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    write_spool(spool, 3, per_write=1)
    [path] = list(spool.glob("*.ndjson"))
    st = path.stat()
    past_two = len(event_line(0)) + len(event_line(1))
    pipeline, _ = _pipeline(tmp_path, ListSink())
    pipeline.seed(path.name, SegmentPosition(ino=st.st_ino, dev=st.st_dev, offset=past_two))
    batch = pipeline.prepare()
    assert batch is not None and batch.items == [_item(2)]


def test_entries_not_followed_are_noted_once_each(tmp_path: Path) -> None:
    owner, dead = _owner(tmp_path)
    for name in (SEGMENT, "other.ndjson", SEGMENT, "other.ndjson"):
        owner.not_followed(name, f"{name}: a symbolic link, refused (never followed)")
    assert [r["segment"] for r in _records(dead)] == [SEGMENT, "other.ndjson"]


def test_an_adopted_dead_letter_file_is_absorbed_as_it_is(tmp_path: Path) -> None:
    owner, dead = _owner(tmp_path)
    theirs = b'{"kind": "bad_line", "line": "x"}\n{"kind": "note"'  # its last record torn
    assert owner.absorb(theirs) == 2
    assert dead.read_bytes() == theirs + b"\n"
    assert owner.written == 2  # counted among the records this process wrote


def test_a_batch_of_one_that_fails_permanently_is_rejected_with_the_error(tmp_path: Path) -> None:
    write_spool(tmp_path / "spool", 1)
    sink = ListSink()
    sink.poison = {_item(0)}
    pipeline, dead = _pipeline(tmp_path, sink)
    batch = pipeline.prepare()
    assert batch is not None
    assert pipeline.deliver(batch) == (0, 1)
    assert [r["reason"] for r in _records(dead)] == [
        f"item 0 of a batch of 1: permanent error: ValueError: cannot encode {_item(0)}"
    ]


def test_a_stateful_sinks_survivors_refused_on_their_second_delivery_are_dead_lettered(
    tmp_path: Path,
) -> None:
    write_spool(tmp_path / "spool", 4)
    sink = StateSink()
    sink.poison = {_item(1)}
    survivors = [_item(0), _item(2), _item(3)]
    sink.reject = lambda batch: (
        [Rejection(2, "refused with the others")] if list(batch) == survivors else []
    )
    pipeline, dead = _pipeline(tmp_path, sink)
    batch = pipeline.prepare()
    assert batch is not None
    assert pipeline.deliver(batch) == (2, 2)
    assert sorted((r["reason"], r["line"]) for r in _records(dead)) == [
        (
            "item 1 of a batch of 4: permanent error: ValueError: cannot encode " + _item(1),
            event_line(1).rstrip(b"\n").decode(),
        ),
        ("item 3 of a batch of 4: refused with the others", event_line(3).rstrip(b"\n").decode()),
    ]


def test_after_a_rewind_the_reader_still_notes_resets_links_and_keeps_the_line_limit(
    tmp_path: Path,
) -> None:
    """A sidecar configured for lines of up to 4 MiB: after a rewind a 1.5 MiB line is still a
    line (here not an event: a bad line), not cut off as oversized at the default 1 MiB."""
    spool = tmp_path / "spool"
    write_spool(spool, 1)
    [path] = list(spool.glob("*.ndjson"))
    limit = 4 * 1024 * 1024
    dead = tmp_path / "dead.ndjson"
    owner = Undeliverable(DeadLetter(dead), tmp_path / "reported.json", limit)
    pipeline = SinkPipeline(
        ListSink(), spool, tmp_path / "cursor.json", owner, max_line_bytes=limit
    )
    batch = pipeline.prepare()
    assert batch is not None
    pipeline.deliver(batch)
    pipeline.rewind()
    (spool / "new").write_bytes(b"x" * (1536 * 1024) + b"\n")
    os.replace(spool / "new", path)  # another file under the name
    link = spool / "30000101T000000.000000000-adapter-1-bbbbbb.ndjson"
    link.symlink_to(path)
    assert pipeline.prepare() is None
    kinds = sorted((r["kind"], r["segment"]) for r in _records(dead))
    assert kinds == sorted([("note", path.name), ("bad_line", path.name), ("note", link.name)])


def test_a_retired_segment_leaves_the_saved_cursor_at_the_next_commit(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    write_spool(spool, 1)
    [first] = list(spool.glob("*.ndjson"))
    pipeline, _ = _pipeline(tmp_path, ListSink())
    batch = pipeline.prepare()
    assert batch is not None
    pipeline.deliver(batch)
    assert set(load_cursor(tmp_path / "cursor.json", "list").positions) == {first.name}
    first.unlink()  # retired
    write_spool(spool, 1, start=1)
    batch = pipeline.prepare()
    assert batch is not None and batch.items == [_item(1)]
    pipeline.deliver(batch)
    [second] = list(spool.glob("*.ndjson"))
    assert set(load_cursor(tmp_path / "cursor.json", "list").positions) == {second.name}
    assert pipeline.reader.gone() == set()  # pruned once saved


def test_dead_lettered_items_add_up_over_commits(tmp_path: Path) -> None:
    write_spool(tmp_path / "spool", 4)
    sink = ListSink(max_batch=2)
    sink.reject = lambda batch: [Rejection(0, "no")]
    pipeline, dead = _pipeline(tmp_path, sink)
    while (batch := pipeline.prepare()) is not None:
        assert pipeline.deliver(batch) == (1, 1)
    assert pipeline.dead_lettered == 2 and len(_records(dead)) == 2
    saved = load_cursor(tmp_path / "cursor.json", "list")
    assert (saved.delivered, saved.dead_lettered) == (2, 2)


def test_a_commit_keeps_a_state_it_does_not_own_and_saves_none_as_null(tmp_path: Path) -> None:
    from floe_sidecar.engine.cursor import Cursor, save_cursor

    save_cursor(tmp_path / "cursor.json", Cursor(owner="list", state=msgspec.Raw(b'{"kept": 1}')))
    write_spool(tmp_path / "spool", 2)
    pipeline, _ = _pipeline(tmp_path, ListSink(max_batch=1))  # not a stateful sink
    batch = pipeline.prepare()
    assert batch is not None
    pipeline.deliver(batch)
    assert bytes(load_cursor(tmp_path / "cursor.json", "list").state) == b'{"kept": 1}'

    class NoState(StateSink):
        def checkpoint(self) -> bytes | None:
            return None

    sink = NoState(max_batch=1)
    stateful = SinkPipeline(sink, tmp_path / "spool", tmp_path / "cursor.json", _owner(tmp_path)[0])
    assert sink.restored == [b'{"kept": 1}']
    batch = stateful.prepare()
    assert batch is not None
    stateful.deliver(batch)
    assert bytes(load_cursor(tmp_path / "cursor.json", "list").state) == b"null"
    assert sink.commits == 1


def test_a_committed_cursor_is_not_written_again_when_idle(tmp_path: Path) -> None:
    """One atomic, fsynced write per batch: nothing left dirty for the idle save."""
    write_spool(tmp_path / "spool", 1)
    pipeline, _ = _pipeline(tmp_path, ListSink())
    pipeline.save_if_dirty()  # a fresh cursor: nothing read, nothing to save
    assert not (tmp_path / "cursor.json").exists()
    batch = pipeline.prepare()
    assert batch is not None
    pipeline.deliver(batch)
    os.unlink(tmp_path / "cursor.json")
    pipeline.save_if_dirty()
    assert not (tmp_path / "cursor.json").exists()


def test_a_batch_across_segments_counts_all_its_events_and_translation_failures(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    write_spool(spool, 2)
    write_spool(spool, 2, start=2)
    sink = ListSink()
    sink.fail_translate = {event_id_of(0), event_id_of(3)}
    pipeline, dead = _pipeline(tmp_path, sink)
    batch = pipeline.prepare()
    assert batch is not None and len(batch.pieces) == 2
    assert batch.items == [_item(1), _item(2)] and batch.events == 4
    assert pipeline.dead_lettered == 2 and len(_records(dead)) == 2


def test_an_empty_segment_retired_under_the_reader_does_not_break_the_next_commit(
    tmp_path: Path,
) -> None:
    """Seen empty (no position committed for it), then retired: the next commit must not fail
    on a segment its cursor never held (a commit that raises is retried forever)."""
    from floe_core.spool import SpoolWriter

    spool = tmp_path / "spool"
    empty = SpoolWriter(spool, prefix="adapter")
    empty._open_new_segment()  # created, then nothing written
    empty.close()
    assert empty.segment is not None
    write_spool(spool, 1)
    pipeline, _ = _pipeline(tmp_path, ListSink())
    batch = pipeline.prepare()
    assert batch is not None
    pipeline.deliver(batch)
    empty.segment.unlink()  # retired
    write_spool(spool, 1, start=1)
    batch = pipeline.prepare()
    assert batch is not None and batch.items == [_item(1)]
    pipeline.deliver(batch)
    assert empty.segment.name not in load_cursor(tmp_path / "cursor.json", "list").positions


def test_an_oversized_line_keeps_its_head_and_length_and_a_long_bad_line_is_kept_whole(
    tmp_path: Path,
) -> None:
    """Over the limit: only the first 64 KiB and the true length (the line cannot be replayed
    anyway). Under it but not an event: the whole line, so it can be fixed and replayed."""
    from floe_sidecar.engine.deadletter import OVERSIZED_HEAD_BYTES

    owner, dead = _owner(tmp_path)  # lines up to 1,024 bytes
    owner.events(_piece([b"o" * 70_000], start=0))
    [oversized] = _records(dead)
    assert (oversized["kind"], oversized["length"], oversized["truncated"]) == (
        "oversized",
        70_000,
        True,
    )
    assert oversized["line"] == "o" * OVERSIZED_HEAD_BYTES
    roomy = Undeliverable(DeadLetter(tmp_path / "roomy.ndjson"), tmp_path / "r.json", 1 << 20)
    roomy.events(_piece([b"{" + b"b" * 99_999], start=0))
    [bad] = _records(tmp_path / "roomy.ndjson")
    assert (bad["kind"], bad["length"], bad["truncated"]) == ("bad_line", 100_000, False)
    assert bad["line"] == "{" + "b" * 99_999


def test_a_pipeline_lets_each_decoded_event_go_once_translated(tmp_path: Path) -> None:
    """Decode, translate, let go, one event at a time: a slice's thousand decoded events held
    at once made the garbage collector walk them again and again (~2 µs an event, a fifth of
    the sidecar's time per event). Counted in collections, not in seconds: the young
    generation is collected each time ~700 more containers are alive than before, so holding
    them showed as 99 collections for these 5,000 events, letting go as 7."""
    from support.data import bench_lines

    with SpoolWriter(tmp_path / "spool", prefix="adapter") as writer:
        writer.append(b"".join(bench_lines(5_000)))
    owner = Undeliverable(DeadLetter(tmp_path / "dead.ndjson"), tmp_path / "reported.json", 1 << 20)
    sink = ListSink(max_batch=1_000)
    pipeline = SinkPipeline(sink, tmp_path / "spool", tmp_path / "cursor.json", owner)
    collections = 0

    def count(phase: str, info: dict[str, int]) -> None:
        nonlocal collections
        if phase == "start" and info["generation"] == 0:
            collections += 1

    thresholds = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults up to 3.12, whatever runs the test
    gc.collect()
    gc.callbacks.append(count)
    try:
        batches = []
        while (batch := pipeline.prepare()) is not None:
            batches.append(batch)
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*thresholds)
    assert sum(b.events for b in batches) == 5_000
    assert collections <= 25, f"{collections} young-generation collections for 5,000 events"


def test_every_entry_not_followed_is_counted_in_what_was_reported(tmp_path: Path) -> None:
    """Two links in the spool: two notes, each counted (the status's dead-letter count reads
    it), and a second notice of the same one neither written nor counted again."""
    owner, dead = _owner(tmp_path)
    before = owner.reported
    owner.not_followed("1.ndjson", "a symbolic link, refused (never followed): 1.ndjson")
    owner.not_followed("2.ndjson", "a symbolic link, refused (never followed): 2.ndjson")
    owner.not_followed("1.ndjson", "a symbolic link, refused (never followed): 1.ndjson")
    assert owner.reported - before == 2
    assert [r["segment"] for r in read_deadletter(dead)] == ["1.ndjson", "2.ndjson"]
