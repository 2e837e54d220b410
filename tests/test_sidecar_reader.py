"""Reading the spool: complete lines only, positions, fragments, oversized lines, truncation,
replacement; and the property that arbitrary bytes never crash the reader/decoder path and every
line ends up delivered or dead-lettered exactly once."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.data import event_line

from floe_core.events import Event, EventError, decode_event
from floe_core.spool import SpoolWriter
from floe_sidecar.engine.cursor import load_cursor
from floe_sidecar.engine.deadletter import DeadLetter, read_deadletter, restore_line
from floe_sidecar.engine.pipeline import SinkPipeline
from floe_sidecar.engine.reader import SpoolReader
from floe_sidecar.engine.undeliverable import Undeliverable
from floe_sidecar.sinks.base import Rejection


def segment(spool: Path, name: str, data: bytes) -> Path:
    spool.mkdir(parents=True, exist_ok=True)
    path = spool / name
    path.write_bytes(data)
    return path


def test_only_complete_lines_while_the_writer_holds_the_segment(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool)
    writer.append(b"one\ntwo\nthr")
    reader = SpoolReader(spool, {})
    span = reader.read(100)
    assert span is not None and span.lines == [b"one", b"two"] and span.end == 8
    assert reader.read(100) is None  # "thr" waits for its newline: the writer is alive
    writer.append(b"ee\n")
    span = reader.read(100)
    assert span is not None and span.lines == [b"three"] and (span.start, span.end) == (8, 14)
    writer.close()
    assert reader.read(100) is None


def test_sealed_segment_ending_mid_line_yields_the_fragment_once(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    segment(spool, "a.ndjson", b"one\npart")
    reader = SpoolReader(spool, {})
    assert reader.read(100).lines == [b"one"]  # type: ignore[union-attr]
    span = reader.read(100)
    assert span is not None and span.kind == "fragment" and span.head == b"part"
    assert (span.start, span.end) == (4, 8)
    assert reader.read(100) is None


def test_a_locked_segment_is_not_sealed(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    path = segment(spool, "a.ndjson", b"part")
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert SpoolReader(spool, {}).read(10) is None
    finally:
        os.close(fd)
    assert SpoolReader(spool, {}).read(10).kind == "fragment"  # type: ignore[union-attr]


def test_max_lines_hands_out_the_rest_later_with_exact_offsets(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    segment(spool, "a.ndjson", b"".join(b"line%d\n" % i for i in range(10)))
    reader = SpoolReader(spool, {})
    spans = []
    while (span := reader.read(3)) is not None:
        spans.append(span)
    assert [len(s.lines) for s in spans] == [3, 3, 3, 1]
    assert [s.start for s in spans] == [0, 18, 36, 54]
    assert spans[-1].end == 60
    assert spans[1].offsets() == [18, 24, 30]


def test_oversized_line_is_skipped_with_its_head(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    big = b"x" * 5000
    segment(spool, "a.ndjson", b"a\n" + big + b"\nb\n")
    reader = SpoolReader(spool, {}, max_line_bytes=100, chunk_bytes=1)
    kinds = []
    while (span := reader.read(10)) is not None:
        kinds.append((span.kind, span.start, span.end, span.length, span.lines))
    assert kinds == [
        ("lines", 0, 2, 0, [b"a"]),
        ("oversized", 2, 5003, 5000, []),
        ("lines", 5003, 5005, 0, [b"b"]),
    ]


def test_segments_are_read_in_name_order_and_positions_resume(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    segment(spool, "2.ndjson", b"c\n")
    segment(spool, "1.ndjson", b"a\nb\n")
    reader = SpoolReader(spool, {})
    first = reader.read(1)
    assert first is not None and (first.segment, first.lines) == ("1.ndjson", [b"a"])
    resumed = SpoolReader(spool, {first.segment: first.position()})
    got = []
    while (span := resumed.read(10)) is not None:
        got.append((span.segment, span.lines))
    assert got == [("1.ndjson", [b"b"]), ("2.ndjson", [b"c"])]


def test_truncated_or_replaced_segment_is_read_again_from_zero(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    path = segment(spool, "a.ndjson", b"aaaa\nbbbb\n")
    resets: list[tuple[str, str]] = []

    def note(segment: str, reason: str, inode: int) -> None:
        resets.append((segment, reason))

    reader = SpoolReader(spool, {}, on_reset=note)
    span = reader.read(10)
    assert span is not None
    position = span.position()
    path.write_bytes(b"cc\n")  # truncated in place (same inode, shorter than the position)
    again = SpoolReader(
        spool, {"a.ndjson": position}, on_reset=lambda s, r, i: resets.append((s, r))
    )
    span = again.read(10)
    assert span is not None and span.lines == [b"cc"] and span.start == 0
    assert "truncated" in resets[-1][1]
    # replaced by a new file under the same name (new inode), longer than the position
    position = span.position()
    path.unlink()
    segment(spool, "a.ndjson", b"dddddddddd\n")
    third = SpoolReader(
        spool, {"a.ndjson": position}, on_reset=lambda s, r, i: resets.append((s, r))
    )
    span = third.read(10)
    assert span is not None and span.lines == [b"dddddddddd"]
    assert "replaced" in resets[-1][1]


def test_same_inode_rewritten_with_other_first_bytes_is_noticed(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    path = segment(spool, "a.ndjson", b"aaaa\n")
    span = SpoolReader(spool, {}).read(10)
    assert span is not None
    with path.open("r+b") as f:  # same inode, same size or longer, other content
        f.write(b"zzzz\nmore\n")
    resets: list[str] = []
    reader = SpoolReader(
        spool, {"a.ndjson": span.position()}, on_reset=lambda s, r, i: resets.append(r)
    )
    span = reader.read(10)
    assert span is not None and span.lines == [b"zzzz", b"more"]
    assert resets and "first bytes changed" in resets[0]


# -- the reader/decoder path as a whole, fed arbitrary bytes ------------------------------------


class Collect:
    name = "collect"
    max_batch = 7

    def __init__(self) -> None:
        self.ids: list[str] = []

    def translate(self, event: Event) -> Sequence[str]:
        return (event.event_id,)

    def deliver(self, batch: Sequence[str]) -> Sequence[Rejection]:
        self.ids.extend(batch)
        return ()

    def close(self) -> None:
        return None


def drain(spool: Path, state: Path, sinks: list[Collect], max_line: int) -> DeadLetter:
    dead = DeadLetter(state / "deadletter.ndjson", durable=False)
    undeliverable = Undeliverable(dead, state / "reported.json", max_line)
    for sink in sinks:
        pipeline = SinkPipeline(
            sink, spool, state / f"{sink.name}.json", undeliverable, max_line_bytes=max_line
        )
        while (batch := pipeline.prepare()) is not None:
            pipeline.deliver(batch)
        pipeline.save_if_dirty()
    undeliverable.save_if_dirty()
    return dead


def expected_outcome(data: bytes, max_line: int) -> tuple[list[str], list[tuple[str, int]]]:
    """What must happen to each line: delivered (by event id) or dead-lettered (kind, offset)."""
    delivered: list[str] = []
    dead: list[tuple[str, int]] = []
    *complete, tail = data.split(b"\n")
    offset = 0
    for line in complete:
        if len(line) > max_line:
            dead.append(("oversized", offset))
        else:
            try:
                delivered.append(decode_event(line).event_id)
            except EventError:
                if line.strip():
                    dead.append(("bad_line", offset))
        offset += len(line) + 1
    if tail:
        dead.append(("oversized" if len(tail) > max_line else "fragment", offset))
    return delivered, dead


pieces = st.one_of(
    st.integers(min_value=0, max_value=50).map(lambda i: event_line(i).rstrip(b"\n")),
    st.binary(max_size=120),
    st.sampled_from(
        [
            b"",
            b"   ",
            b"{}",
            b'{"type":"nope","v":1}',
            b'{"type":"node_started","v":99}',
            b"\xff\xfe",
        ]
    ),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(pieces, max_size=25),
    tail=st.binary(max_size=40),
    max_line=st.sampled_from([64, 900, 4096]),
)
def test_arbitrary_bytes_every_line_is_delivered_or_dead_lettered_once(
    tmp_path_factory: object, lines: list[bytes], tail: bytes, max_line: int
) -> None:
    root = tmp_path_factory.mktemp("prop")  # type: ignore[attr-defined]
    spool, state = root / "spool", root / "state"
    state.mkdir()
    data = b"\n".join(lines) + (b"\n" if lines else b"") + tail.replace(b"\n", b"")
    segment(spool, "0001.ndjson", data)
    sinks = [Collect(), Collect()]
    sinks[1].name = "collect2"
    drain(spool, state, sinks, max_line)

    want_delivered, want_dead = expected_outcome(data, max_line)
    for sink in sinks:
        assert sink.ids == want_delivered  # in order, each once
    records = read_deadletter(state / "deadletter.ndjson")
    assert [(r["kind"], r["offset"]) for r in records] == want_dead  # once, not once per sink
    for record in records:
        raw = restore_line(record)
        offset = record["offset"]
        assert isinstance(offset, int) and raw is not None and data[offset:].startswith(raw)
        assert record["segment"] == "0001.ndjson" and record["reason"]
    # and a second pass finds nothing new: the cursors are where they should be
    again = [Collect(), Collect()]
    again[1].name = "collect2"
    drain(spool, state, again, max_line)
    assert again[0].ids == [] and again[1].ids == []
    assert len(read_deadletter(state / "deadletter.ndjson")) == len(records)
    assert load_cursor(state / "collect.json", "collect").delivered == len(want_delivered)
    json.dumps(records)  # the dead-letter file is plain JSON


def test_the_reader_tells_which_segments_it_found_sealed_and_read_to_their_end(
    tmp_path: Path,
) -> None:
    """What retention may take on the reader's word: sealed, read to the end, at that size; not a
    segment it has not reached, nor one its writer still holds. (Whether a sink is done with a
    segment is its cursor's word, not this.)"""
    spool = tmp_path / "spool"
    done = segment(spool, "20260101T000000.000000001-adapter-1-aaaaaa.ndjson", b"a\nb\n")
    empty = segment(spool, "20260101T000001.000000001-adapter-1-aaaaaa.ndjson", b"")
    later = segment(spool, "20260101T000002.000000001-adapter-1-aaaaaa.ndjson", b"c\n")
    writer = SpoolWriter(spool)
    writer.append(b"live\n")
    try:
        reader = SpoolReader(spool, {})
        first = reader.read(10)
        assert first is not None and first.lines == [b"a", b"b"]
        assert set(reader.sealed_ends()) == {done.name}  # the others not reached yet
        second = reader.read(10)  # past the empty segment, into the third
        assert second is not None and second.lines == [b"c"]
        third = reader.read(10)
        assert third is not None and third.lines == [b"live"]
        assert reader.read(10) is None
        ends = reader.sealed_ends()
        assert ends == {
            p.name: (p.stat().st_ino, p.stat().st_dev, p.stat().st_size)
            for p in (done, empty, later)
        }
        assert writer.segment is not None and writer.segment.name not in ends  # still written
        ends.clear()  # a copy: the reader's own record is untouched
        assert len(reader.sealed_ends()) == 3
    finally:
        writer.close()


def test_each_reset_names_what_happened_and_the_new_files_inode(tmp_path: Path) -> None:
    """The reason goes into the dead-letter note an operator reads: exact, not a keyword."""
    spool = tmp_path / "spool"
    path = segment(spool, "a.ndjson", b"aaaa\nbbbb\n")
    resets: list[tuple[str, str, int]] = []

    def read_again(position: object) -> None:
        reader = SpoolReader(
            spool, {"a.ndjson": position}, on_reset=lambda *reset: resets.append(reset)
        )
        assert reader.read(10) is not None

    span = SpoolReader(spool, {}).read(10)
    assert span is not None
    path.write_bytes(b"cc\n")  # same inode, shorter
    read_again(span.position())
    path.write_bytes(b"dddddddddddd\n")  # same inode, longer, other first bytes
    read_again(span.position())
    (spool / "new").write_bytes(b"eeee\nffff\n")
    os.replace(spool / "new", path)  # another file under the name (the old one still open)
    read_again(span.position())
    inode = path.stat().st_ino
    assert resets[0][:2] == ("a.ndjson", "truncated to 3 bytes, below position 10")
    assert resets[1][:2] == ("a.ndjson", "replaced (first bytes changed)")
    assert resets[2] == ("a.ndjson", "replaced (inode changed)", inode)


def test_the_fingerprint_grows_with_the_segment_to_its_full_length(tmp_path: Path) -> None:
    """Read while short, the first bytes are fingerprinted again as the file grows, so a file
    rewritten past its first few bytes is still told apart."""
    from floe_sidecar.engine.cursor import FINGERPRINT_BYTES, fingerprint

    spool = tmp_path / "spool"
    reader = SpoolReader(spool, {})
    with SpoolWriter(spool) as writer:  # held open: the segment grows
        writer.append(b"a\n")
        first = reader.read(10)
        assert first is not None and first.fp_len == 2 and first.fp == fingerprint(b"a\n")
        writer.append(b"b" * 300 + b"\n")
        grown = reader.read(10)
        assert grown is not None and grown.lines == [b"b" * 300]
        head = (b"a\n" + b"b" * 300)[:FINGERPRINT_BYTES]
        assert (grown.fp_len, grown.fp) == (FINGERPRINT_BYTES, fingerprint(head))
        writer.append(b"c\n")
        last = reader.read(10)
        assert last is not None and (last.fp_len, last.fp) == (grown.fp_len, grown.fp)


def test_a_line_of_exactly_the_limit_is_a_line_even_with_small_chunks(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    line = b"x" * 100
    segment(spool, "a.ndjson", line + b"\n" + b"y" * 101 + b"\n")
    reader = SpoolReader(spool, {}, max_line_bytes=100, chunk_bytes=10)
    span = reader.read(10)
    assert span is not None and span.kind == "lines" and span.lines == [line]
    over = reader.read(10)
    assert over is not None and over.kind == "oversized" and over.length == 101


# -- survivors of the reader's mutation run --------------------------------------------------


def test_a_segment_deleted_between_listing_and_open_is_read_when_it_comes_back(
    tmp_path: Path,
) -> None:
    """Listed, gone at its first open, then created again under the same name before the next
    listing: read, not skipped because its name was listed once (and forgetting a segment never
    read is no error)."""
    spool = tmp_path / "spool"
    segment(spool, "1.ndjson", b"a\nb\n")
    middle = segment(spool, "2.ndjson", b"x\n")
    segment(spool, "3.ndjson", b"y\n")
    reader = SpoolReader(spool, {})
    first = reader.read(1)  # all three listed; the rest of 1.ndjson is held back
    assert first is not None and first.lines == [b"a"]
    middle.unlink()
    rest = reader.read(10)
    assert rest is not None and rest.lines == [b"b"]
    after = reader.read(10)  # 2.ndjson gone at its open: on to the next one
    assert after is not None and (after.segment, after.lines) == ("3.ndjson", [b"y"])
    assert reader.gone() == set()  # it had no position: nothing to prune from the cursor
    segment(spool, "2.ndjson", b"c\n")
    back = reader.read(10)
    assert back is not None and (back.segment, back.lines, back.start) == ("2.ndjson", [b"c"], 0)
    assert reader.read(10) is None


def test_a_refused_segment_with_a_saved_position_is_refused_once(tmp_path: Path) -> None:
    """A segment the cursor knows, replaced by a link: refused once and never opened again (not
    at every read, for as long as the sidecar runs)."""
    spool = tmp_path / "spool"
    path = segment(spool, "1.ndjson", b"a\n")
    span = SpoolReader(spool, {}).read(10)
    assert span is not None
    target = segment(tmp_path / "elsewhere", "target", b"secret\n")
    path.unlink()
    path.symlink_to(target)
    refused: list[str] = []
    reader = SpoolReader(
        spool, {"1.ndjson": span.position()}, on_refused=lambda name, why: refused.append(name)
    )
    for _ in range(3):
        assert reader.read(10) is None
    reader._listed_at -= 10  # a periodic listing, too
    assert reader.read(10) is None
    assert refused == ["1.ndjson"]


def test_seeding_a_segment_already_read_reads_it_again_from_the_seed(tmp_path: Path) -> None:
    """A seed for a segment this reader has read to its end and found sealed: queued again, its
    first bytes checked against the seed's, and no longer told to retention as read."""
    from floe_sidecar.engine.cursor import SegmentPosition, fingerprint

    spool = tmp_path / "spool"
    path = segment(spool, "1.ndjson", b"a\nb\n")
    resets: list[tuple[str, str]] = []
    reader = SpoolReader(spool, {}, on_reset=lambda s, r, i: resets.append((s, r)))
    whole = reader.read(10)
    assert whole is not None and whole.lines == [b"a", b"b"]
    assert reader.read(10) is None and set(reader.sealed_ends()) == {"1.ndjson"}
    st_ = path.stat()
    matching = SegmentPosition(
        ino=st_.st_ino, dev=st_.st_dev, offset=2, fp=fingerprint(b"a\nb\n"), fp_len=4
    )
    reader.seed("1.ndjson", matching)
    assert reader.sealed_ends() == {}
    again = reader.read(10)
    assert again is not None and (again.start, again.lines) == (2, [b"b"]) and resets == []
    other = SegmentPosition(
        ino=st_.st_ino, dev=st_.st_dev, offset=2, fp=fingerprint(b"z\n"), fp_len=2
    )
    reader.seed("1.ndjson", other)  # another file's first bytes: read from 0
    fresh = reader.read(10)
    assert fresh is not None and (fresh.start, fresh.lines) == (0, [b"a", b"b"])
    assert resets == [("1.ndjson", "replaced (first bytes changed)")]


def test_an_oversized_line_still_written_waits_for_its_end(tmp_path: Path) -> None:
    """A long line whose writer is alive is not cut where the file ends now: its tail would come
    back as a line of its own."""
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool)
    try:
        writer.append(b"a\n" + b"x" * 500)
        reader = SpoolReader(spool, {}, max_line_bytes=100, chunk_bytes=1)
        first = reader.read(10)
        assert first is not None and first.lines == [b"a"]
        assert reader.read(10) is None  # the long line is not over yet
        writer.append(b"x" * 10 + b"\nb\n")
        over = reader.read(10)
        assert over is not None and over.kind == "oversized"
        assert (over.start, over.end, over.length) == (2, 513, 510)
        last = reader.read(10)
        assert last is not None and (last.lines, last.start) == ([b"b"], 513)
    finally:
        writer.close()


def test_an_oversized_slice_commits_the_segments_own_position(tmp_path: Path) -> None:
    """The position committed past an oversized line names the segment's file and first bytes,
    as a slice of lines does: a cursor saved there resumes, it does not read the segment again."""
    from floe_sidecar.engine.cursor import FINGERPRINT_BYTES, fingerprint

    spool = tmp_path / "spool"
    data = b"a\n" + b"x" * 500 + b"\nb\n"
    path = segment(spool, "1.ndjson", data)
    reader = SpoolReader(spool, {}, max_line_bytes=100, chunk_bytes=1)
    assert reader.read(10) is not None
    over = reader.read(10)
    assert over is not None and over.kind == "oversized"
    st_ = path.stat()
    head = data[:FINGERPRINT_BYTES]
    assert (over.ino, over.dev, over.fp, over.fp_len) == (
        st_.st_ino,
        st_.st_dev,
        fingerprint(head),
        len(head),
    )
    resets: list[str] = []
    resumed = SpoolReader(
        spool, {"1.ndjson": over.position()}, on_reset=lambda s, r, i: resets.append(r)
    )
    last = resumed.read(10)
    assert last is not None and (last.start, last.lines) == (503, [b"b"]) and resets == []


def test_a_sealed_segment_cut_short_while_read_whole_is_not_read_past_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Truncated by someone else between the reader's fstat and its read: the slice ends where
    the bytes read end, not at the size the fstat gave (a position past the data would skip
    whatever is written there next)."""
    spool = tmp_path / "spool"
    path = segment(spool, "1.ndjson", b"a\nb\n")
    real_pread = os.pread

    def cut_then_read(fd: int, length: int, offset: int) -> bytes:
        os.truncate(path, 2)
        return real_pread(fd, length, offset)

    monkeypatch.setattr(os, "pread", cut_then_read)
    span = SpoolReader(spool, {}).read(10)
    monkeypatch.undo()
    assert span is not None and (span.lines, span.start, span.end) == ([b"a"], 0, 2)


def test_a_sealed_segment_whose_last_line_ends_in_another_control_byte_keeps_the_fragment(
    tmp_path: Path,
) -> None:
    """Only a newline ends a line: a sealed segment ending in a vertical tab (or any other byte)
    has a fragment after its last line, dead-lettered, not dropped with the whole-read shortcut."""
    spool = tmp_path / "spool"
    segment(spool, "1.ndjson", b"a\nb\x0b")
    reader = SpoolReader(spool, {})
    lines = reader.read(10)
    assert lines is not None and (lines.lines, lines.end) == ([b"a"], 2)
    rest = reader.read(10)
    assert rest is not None and (rest.kind, rest.head, rest.start, rest.end) == (
        "fragment",
        b"b\x0b",
        2,
        4,
    )


def test_a_sealed_segment_read_whole_keeps_its_blank_last_line_apart(tmp_path: Path) -> None:
    """A blank line at the end is a line of its own, not a newline inside the one before."""
    spool = tmp_path / "spool"
    segment(spool, "1.ndjson", b"a\n\n")
    span = SpoolReader(spool, {}).read(10)
    assert span is not None and (span.lines, span.end) == ([b"a", b""], 3)


def test_exactly_max_lines_leaves_nothing_held_back(tmp_path: Path) -> None:
    """A read of exactly ``max_lines`` lines hands out no empty slice after them."""
    spool = tmp_path / "spool"
    segment(spool, "1.ndjson", b"a\nb\nc\n")
    reader = SpoolReader(spool, {})
    span = reader.read(3)
    assert span is not None and (span.lines, span.end) == ([b"a", b"b", b"c"], 6)
    assert reader.read(3) is None


def test_a_fifo_named_as_a_segment_is_refused_once_by_name_without_blocking(
    tmp_path: Path,
) -> None:
    """A FIFO in the spool (nothing floe writes makes one) must never stall the reader on an
    open that waits for a writer: it is refused, once, under its name, with what it is and where,
    and the segments after it are read."""
    import threading

    spool = tmp_path / "spool"
    spool.mkdir()
    os.mkfifo(spool / "1.ndjson")
    segment(spool, "2.ndjson", b"a\n")
    refused: list[tuple[str, str]] = []
    reader = SpoolReader(spool, {}, on_refused=lambda name, why: refused.append((name, why)))
    slices: list[object] = []
    reading = threading.Thread(target=lambda: slices.extend(reader.read(10) for _ in range(3)))
    reading.daemon = True
    reading.start()
    reading.join(timeout=10)
    if reading.is_alive():  # blocked in open(): give it a writer so the thread can end
        with open(spool / "1.ndjson", "wb"):
            pass
        reading.join(timeout=10)
        pytest.fail("the reader blocked opening a FIFO")
    first = slices[0]
    assert first is not None and (first.segment, first.lines) == ("2.ndjson", [b"a"])  # type: ignore[attr-defined]
    assert slices[1:] == [None, None]
    reader._listed_at -= 10  # a periodic listing finds it again: still refused once only
    assert reader.read(10) is None
    assert refused == [("1.ndjson", f"not a regular file, refused: {spool / '1.ndjson'}")]


# --- survivors of the reader's mutation run -----------------------------------------------------


def _drain(reader: SpoolReader, max_lines: int = 10) -> list[tuple[str, list[bytes]]]:
    out = []
    while (piece := reader.read(max_lines)) is not None:
        out.append((piece.segment, piece.lines))
    return out


def test_draining_a_backlog_lists_the_directory_a_bounded_number_of_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue, not the directory, says what comes next: draining 60 segments lists the spool
    once to find them and once to learn there is nothing more, not once per segment (which
    would make a backlog of n segments cost n listings of n names)."""
    spool = tmp_path / "spool"
    for i in range(60):
        segment(spool, f"{i:03d}.ndjson", b"a\n")
    listings: list[object] = []
    real = os.listdir

    def counting(path: object) -> list[str]:
        listings.append(path)
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "listdir", counting)
    reader = SpoolReader(spool, {})
    assert len(_drain(reader)) == 60
    assert len(listings) <= 3


def test_a_segment_retired_then_written_again_under_its_name_is_read_again(
    tmp_path: Path,
) -> None:
    """Once a listing has seen a segment go, the name is free: a new segment under it (after a
    restore, or a writer that reuses names) is read like any other, never taken as known."""
    spool = tmp_path / "spool"
    first = segment(spool, "1.ndjson", b"a\n")
    reader = SpoolReader(spool, {})
    assert _drain(reader) == [("1.ndjson", [b"a"])]
    first.unlink()
    reader._listed_at -= 10
    assert reader.read(10) is None  # the listing that sees it gone
    segment(spool, "1.ndjson", b"b\n")
    assert _drain(reader) == [("1.ndjson", [b"b"])]


def test_a_refused_name_that_is_replaced_by_a_segment_is_read_to_its_end(tmp_path: Path) -> None:
    """A FIFO refused, then removed, and a segment still being written put under its name: the
    segment is read as it grows, not dropped from the queue after its first lines."""
    spool = tmp_path / "spool"
    spool.mkdir()
    os.mkfifo(spool / "1.ndjson")
    reader = SpoolReader(spool, {}, on_refused=lambda name, why: None)
    assert reader.read(10) is None
    (spool / "1.ndjson").unlink()
    reader._listed_at -= 10
    assert reader.read(10) is None
    fd = os.open(spool / "1.ndjson", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a writer holds it: not sealed
        os.write(fd, b"a\n")
        assert _drain(reader) == [("1.ndjson", [b"a"])]
        os.write(fd, b"b\n")
        assert _drain(reader) == [("1.ndjson", [b"b"])]
    finally:
        os.close(fd)


def test_a_segment_going_away_leaves_the_rest_of_the_queue_to_be_read(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    for name in ("1", "2", "3", "4"):
        segment(spool, f"{name}.ndjson", name.encode() + b"\n")
    reader = SpoolReader(spool, {})
    assert reader.read(10) is not None  # 1.ndjson; 2, 3 and 4 queued
    (spool / "2.ndjson").unlink()
    reader._listed_at -= 10
    assert _drain(reader) == [("3.ndjson", [b"3"]), ("4.ndjson", [b"4"])]


def test_a_segment_listed_late_with_an_earlier_name_is_read_in_name_order(tmp_path: Path) -> None:
    """Segments are read in name (creation) order even when one appears after later ones were
    queued (a run pod's spool adopted, a slow rename): merged into the queue, not appended."""
    spool = tmp_path / "spool"
    for name in ("4", "5", "6", "9"):
        segment(spool, f"{name}.ndjson", name.encode() + b"\n")
    reader = SpoolReader(spool, {})
    piece = reader.read(10)
    assert piece is not None and piece.segment == "4.ndjson"  # 5, 6 and 9 queued
    segment(spool, "7.ndjson", b"7\n")
    reader._listed_at -= 10
    assert [name for name, _ in _drain(reader)] == ["5.ndjson", "6.ndjson", "7.ndjson", "9.ndjson"]


def test_a_segment_sealed_after_it_was_read_is_told_to_retention_with_its_identity(
    tmp_path: Path,
) -> None:
    from floe_sidecar.engine.reader import SealedEnd

    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, prefix="t")
    writer.append(b"a\nb\n")
    assert writer.segment is not None
    name = writer.segment.name
    reader = SpoolReader(spool, {})
    assert _drain(reader) == [(name, [b"a", b"b"])]
    assert reader.sealed_ends() == {}  # still written
    writer.close()
    assert reader.read(10) is None
    st = os.stat(spool / name)
    assert reader.sealed_ends() == {name: SealedEnd(st.st_ino, st.st_dev, st.st_size)}

    # Sealed while its last lines were unread: the read that takes them learns it is done.
    writer = SpoolWriter(spool, prefix="t")
    writer.append(b"c\n")
    assert writer.segment is not None
    second = writer.segment.name
    assert _drain(reader) == [(second, [b"c"])]
    writer.append(b"d\n")
    writer.close()
    piece = reader.read(10)
    assert piece is not None and piece.lines == [b"d"]
    st = os.stat(spool / second)
    assert reader.sealed_ends()[second] == SealedEnd(st.st_ino, st.st_dev, st.st_size)


def test_a_sealed_segment_ending_inside_a_line_gives_a_fragment_with_its_length(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    segment(spool, "1.ndjson", b"b\ntail")
    reader = SpoolReader(spool, {}, max_line_bytes=4)  # the tail is exactly the limit: no more
    first = reader.read(10)
    assert first is not None and (first.kind, first.lines) == ("lines", [b"b"])
    tail = reader.read(10)
    assert tail is not None
    assert (tail.kind, tail.head, tail.length, tail.start, tail.end) == (
        "fragment",
        b"tail",
        4,
        2,
        6,
    )
    assert reader.read(10) is None


def test_a_line_of_exactly_the_limit_is_a_line_even_when_its_newline_comes_later(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, prefix="t")
    writer.append(b"x" * 100)
    assert writer.segment is not None
    reader = SpoolReader(spool, {}, max_line_bytes=100)
    assert reader.read(10) is None  # no newline yet: a line still being written
    writer.append(b"\n")
    piece = reader.read(10)
    assert piece is not None and (piece.kind, piece.lines) == ("lines", [b"x" * 100])
    writer.close()


def test_a_segment_whose_seal_cannot_be_tested_is_taken_as_still_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock test that fails for another reason than the writer's lock (no locks on this file
    system) must not make a segment look sealed: its unfinished line is waited for, never cut
    off as a fragment, and retention is not told it is done."""
    import errno

    from floe_sidecar.engine import reader as reader_module

    def no_locks(fd: int, *, closing: bool = False) -> bool:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(reader_module, "fd_is_sealed", no_locks)
    spool = tmp_path / "spool"
    segment(spool, "1.ndjson", b"a\nunfinished")
    reader = SpoolReader(spool, {})
    assert _drain(reader) == [("1.ndjson", [b"a"])]
    assert reader.sealed_ends() == {}
