"""A backlog of many small segments (issue 11): one batch spans many segments, costs one deliver
and one cursor save, and keeps every promise one segment's batch keeps: the cursor never moves past
an event not delivered, a ``kill -9`` mid-batch loses nothing, the reader's listing of a long
backlog is incremental yet misses no segment."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from support.data import event_id_of, event_line
from support.sidecar import SidecarProcess, ids_and_torn_lines, run_sidecar

from floe_core.events import Event
from floe_core.spool import SpoolWriter, list_segments
from floe_sidecar.engine import pipeline as pipeline_module
from floe_sidecar.engine.cursor import load_cursor
from floe_sidecar.engine.deadletter import DeadLetter
from floe_sidecar.engine.pipeline import SinkPipeline
from floe_sidecar.engine.reader import SpoolReader
from floe_sidecar.engine.undeliverable import Undeliverable
from floe_sidecar.sinks.base import Rejection


def one_event_segments(spool: Path, count: int, start: int = 0) -> list[str]:
    """``count`` sealed segments of one event each, as many adapter steps leave them; ids."""
    for i in range(start, start + count):
        with SpoolWriter(spool, prefix="adapter") as writer:
            writer.append(event_line(i))
    return [event_id_of(i) for i in range(start, start + count)]


class FailsPartWay:
    """Takes the first ``accept`` items of the first batch, then fails (a connection lost mid
    request); from then on takes everything."""

    name = "partway"
    max_batch = 100

    def __init__(self, accept: int) -> None:
        self.accept = accept
        self.ids: list[str] = []
        self.calls = 0

    def translate(self, event: Event) -> Sequence[str]:
        return (event.event_id,)

    def deliver(self, batch: Sequence[str]) -> Sequence[Rejection]:
        self.calls += 1
        if self.calls == 1:
            self.ids.extend(batch[: self.accept])
            raise ConnectionError("connection reset part way through the batch")
        self.ids.extend(batch)
        return ()

    def close(self) -> None:
        return None


def pipeline_for(tmp_path: Path, sink: FailsPartWay) -> SinkPipeline:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    undeliverable = Undeliverable(
        DeadLetter(state / "deadletter.ndjson"), state / "reported.json", 1 << 20
    )
    return SinkPipeline(sink, tmp_path / "spool", state / f"{sink.name}.json", undeliverable)


def test_one_batch_spans_many_segments_with_one_deliver_and_one_cursor_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = one_event_segments(tmp_path / "spool", 40)
    sink = FailsPartWay(accept=0)
    sink.calls = 1  # no failure in this test
    pipeline = pipeline_for(tmp_path, sink)
    saves: list[int] = []
    real_save = pipeline_module.save_cursor
    monkeypatch.setattr(
        pipeline_module,
        "save_cursor",
        lambda path, cursor: (saves.append(len(cursor.positions)), real_save(path, cursor)),
    )
    batch = pipeline.prepare()
    assert batch is not None and len(batch.items) == 40 and len(batch.pieces) == 40
    assert pipeline.deliver(batch) == (40, 0)
    assert pipeline.prepare() is None
    assert sink.ids == ids and sink.calls == 2
    assert saves == [40]  # one durable save for the 40 segments, every one at its end
    cursor = load_cursor(tmp_path / "state" / "partway.json", "partway")
    sizes = {p.name: p.stat().st_size for p in list_segments(tmp_path / "spool")}
    assert {name: pos.offset for name, pos in cursor.positions.items()} == sizes


def test_a_batch_over_many_segments_that_fails_part_way_moves_no_position(
    tmp_path: Path,
) -> None:
    """The endpoint took the first 7 of 25 events (from 7 segments) and then failed: the cursor
    stays before the first of them (duplicates are allowed, a skip never), and the retry delivers
    every event."""
    ids = one_event_segments(tmp_path / "spool", 25)
    sink = FailsPartWay(accept=7)
    pipeline = pipeline_for(tmp_path, sink)
    batch = pipeline.prepare()
    assert batch is not None and len(batch.pieces) == 25
    with pytest.raises(ConnectionError):
        pipeline.deliver(batch)
    saved = load_cursor(tmp_path / "state" / "partway.json", "partway")
    assert saved.positions == {} and saved.delivered == 0
    assert pipeline.cursor.positions == {}
    assert pipeline.deliver(batch) == (25, 0)  # the runner retries the same batch
    assert sink.ids == ids[:7] + ids
    assert pipeline.prepare() is None
    saved = load_cursor(tmp_path / "state" / "partway.json", "partway")
    assert len(saved.positions) == 25 and saved.delivered == 25


def test_a_sidecar_killed_mid_drain_of_many_segments_loses_nothing(tmp_path: Path) -> None:
    """``kill -9`` at random moments of a drain of 3,000 one-event segments (three batches of
    the file sink), then a drain to the end: every event is in the sink's file at least once,
    nothing is left in the spool."""
    spool, out = tmp_path / "spool", tmp_path / "out.ndjson"
    ids = one_event_segments(spool, 3000)
    args = ("--spool", spool, "--once", "--no-default-sinks", "--sink", f"file:{out}")
    rng = random.Random(11)
    killed_with = []
    for _ in range(3):
        sidecar = SidecarProcess(tmp_path / "logs", *args)
        deadline = time.monotonic() + 30
        delivered_before = len(ids_and_torn_lines(out)[0])
        while len(ids_and_torn_lines(out)[0]) == delivered_before and sidecar.alive():
            assert time.monotonic() < deadline, sidecar.stderr()
            time.sleep(0.005)  # until this run's first batch is out: the drain is under way
        time.sleep(rng.uniform(0.0, 0.05))
        if not sidecar.alive():
            break  # it finished before the kill: the final run below has nothing to do
        sidecar.kill()
        killed_with.append(len(list_segments(spool)))
    assert killed_with and any(killed_with), "never killed mid-drain"
    done = run_sidecar(*args)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    delivered, _torn = ids_and_torn_lines(out)
    assert set(ids) <= set(delivered)
    assert not list_segments(spool)


def test_segments_that_appear_during_a_long_drain_are_read_in_name_order(
    tmp_path: Path,
) -> None:
    """The reader lists a long backlog again incrementally: a segment created meanwhile under a
    name that sorts before others still queued (writers name segments at creation, make them
    visible a moment later) is read in its place, and one removed and created again under the
    same name is read again."""
    spool = tmp_path / "spool"
    spool.mkdir()

    def put(name: str, line: bytes) -> Path:
        path = spool / f"{name}.ndjson"
        path.write_bytes(line)
        return path

    put("b", b"b\n")
    put("d", b"d\n")
    reader = SpoolReader(spool, {})
    first = reader.read(10)
    assert first is not None and first.segment == "b.ndjson"
    put("a", b"a\n")  # sorts before the queued d, and before b, which was read
    put("c", b"c\n")  # sorts between b and the queued d
    put("e", b"e\n")
    reader._listed_at -= 10  # the periodic listing is due
    order = []
    while (piece := reader.read(10)) is not None:
        order.append(piece.segment)
    assert order == ["a.ndjson", "c.ndjson", "d.ndjson", "e.ndjson"]
    os.unlink(spool / "c.ndjson")
    assert reader.read(10) is None  # the listing sees c gone
    assert "c.ndjson" in reader.gone()
    put("c", b"c again\n")
    piece = reader.read(10)
    assert piece is not None and (piece.segment, piece.lines) == ("c.ndjson", [b"c again"])
    assert reader.read(10) is None
    for name in "fgh":
        put(name, f"{name}\n".encode())
    reader._listed_at -= 10
    piece = reader.read(10)
    assert piece is not None and piece.segment == "f.ndjson"
    os.unlink(spool / "g.ndjson")  # queued, gone before it is opened
    piece = reader.read(10)
    assert piece is not None and piece.segment == "h.ndjson"
    put("g", b"g again\n")  # back under the same name before the reader lists again
    piece = reader.read(10)
    assert piece is not None and (piece.segment, piece.lines) == ("g.ndjson", [b"g again"])


def test_a_refused_entry_is_not_opened_again_at_every_listing(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (tmp_path / "secret").write_bytes(b"secret\n")
    (spool / "a.ndjson").symlink_to(tmp_path / "secret")
    refused: list[str] = []
    reader = SpoolReader(spool, {}, on_refused=lambda name, reason: refused.append(name))
    for _ in range(3):
        assert reader.read(10) is None
    assert refused == ["a.ndjson"]
