"""NDJSON framing of the socket stream: complete lines out, oversized lines set aside."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from floe_sidecar.engine.deadletter import OVERSIZED_HEAD_BYTES
from floe_sidecar.sources.framing import LineFramer


def feed_all(
    framer: LineFramer, chunks: list[bytes]
) -> tuple[list[bytes], list[tuple[int, bytes]]]:
    lines: list[bytes] = []
    oversized: list[tuple[int, bytes]] = []
    for chunk in chunks:
        out = framer.feed(chunk)
        lines += out.lines
        oversized += [(o.length, o.head) for o in out.oversized]
    return lines, oversized


def test_lines_split_across_chunks_are_joined() -> None:
    framer = LineFramer(100)
    lines, oversized = feed_all(framer, [b'{"a"', b":1}\n{", b'"b":2}\n', b"\n", b"tail"])
    assert lines == [b'{"a":1}', b'{"b":2}', b""]
    assert oversized == []
    left = framer.unfinished()
    assert left is not None and left.head == b"tail" and left.length == 4


def test_oversized_line_is_reported_once_with_its_length_and_head_and_framing_goes_on() -> None:
    framer = LineFramer(10)
    big = b"x" * 25
    lines, oversized = feed_all(framer, [b"ok\n" + big[:7], big[7:20], big[20:] + b"\nnext\n"])
    assert lines == [b"ok", b"next"]
    assert oversized == [(25, big)]
    assert framer.unfinished() is None


def test_oversized_head_is_bounded() -> None:
    framer = LineFramer(OVERSIZED_HEAD_BYTES)
    big = b"y" * (OVERSIZED_HEAD_BYTES * 3)
    out = framer.feed(big)
    assert out.count == 0 and framer.pending == len(big)
    out = framer.feed(b"\n")
    assert [(o.length, len(o.head)) for o in out.oversized] == [(len(big), OVERSIZED_HEAD_BYTES)]


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=400),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    limit=st.integers(min_value=1, max_value=40),
)
def test_any_bytes_any_chunking_frames_like_a_split(
    data: bytes, cuts: list[int], limit: int
) -> None:
    """Property: however the stream is cut, the framer yields exactly the newline-terminated
    lines, in order: those within the limit as lines, the others as oversized (length + head);
    what follows the last newline is the unfinished tail."""
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    framer = LineFramer(limit)
    lines, oversized = feed_all(framer, chunks)
    *complete, tail = data.split(b"\n")
    assert lines == [x for x in complete if len(x) <= limit]
    assert oversized == [(len(x), x[:OVERSIZED_HEAD_BYTES]) for x in complete if len(x) > limit]
    left = framer.unfinished()
    assert (left.length if left else 0) == len(tail)
    if left is not None:
        assert left.head == tail[:OVERSIZED_HEAD_BYTES]
