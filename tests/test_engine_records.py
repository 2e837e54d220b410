"""What the sidecar writes down about lines it cannot deliver, exactly, and the reader's own
bookkeeping (seeds, resets, deletions), called directly on the test's thread.

The engine tests run these paths on sink worker threads; here each record is checked field by
field (what an operator reads in the dead-letter file to find and replay a line), and each
count in a status is checked where it can be off by one.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from floe_core.fsutil import fsync_dir
from floe_core.spool import SpoolWriter, is_sealed
from floe_sidecar.engine import deadletter as deadletter_module
from floe_sidecar.engine import retention
from floe_sidecar.engine.cursor import SegmentPosition, fingerprint, load_cursor
from floe_sidecar.engine.deadletter import DeadLetter, count_records, read_deadletter
from floe_sidecar.engine.pipeline import SinkPipeline
from floe_sidecar.engine.reader import SegmentSlice, SpoolReader
from floe_sidecar.engine.undeliverable import Undeliverable
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
