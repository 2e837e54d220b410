"""The engine in-process (anyio): socket intake and its ACKs, retries, give-up, rejections,
per-sink independence, segment retirement, the once mode; plus arbitrary bytes on the socket."""

from __future__ import annotations

import fcntl
import grp
import os
import stat
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.data import event_id_of, event_line
from support.sidecar import write_spool

from floe_core.events import Event
from floe_core.layout import SpoolLayout
from floe_core.spool import list_segments
from floe_core.transport import format_ack
from floe_sidecar import app as app_module
from floe_sidecar.app import RunReport, Sidecar
from floe_sidecar.config import EngineOptions
from floe_sidecar.engine.cursor import load_cursor
from floe_sidecar.engine.deadletter import DeadLetter, read_deadletter
from floe_sidecar.engine.retry import RetryPolicy
from floe_sidecar.engine.undeliverable import Undeliverable
from floe_sidecar.engine.wakeup import Wakeup
from floe_sidecar.sinks.base import Rejection
from floe_sidecar.sources.socket import SocketIntake

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.05)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Collect:
    """An in-memory sink; ``fail_first`` attempts raise, ``gate`` (if set) blocks deliver."""

    def __init__(self, name: str = "collect", max_batch: int = 50, fail_first: int = 0) -> None:
        self.name = name
        self.max_batch = max_batch
        self.ids: list[str] = []
        self.attempts = 0
        self.fail_first = fail_first
        self.gate: threading.Event | None = None
        self.reject: Callable[[Sequence[str]], Sequence[Rejection]] = lambda batch: ()
        self.closed = False

    def translate(self, event: Event) -> Sequence[str]:
        return (event.event_id,)

    def deliver(self, batch: Sequence[str]) -> Sequence[Rejection]:
        self.attempts += 1
        if self.gate is not None:
            self.gate.wait()
        if self.attempts <= self.fail_first:
            raise ConnectionError(f"endpoint down (attempt {self.attempts})")
        rejected = self.reject(batch)
        bad = {r.index for r in rejected}
        self.ids.extend(x for i, x in enumerate(batch) if i not in bad)
        return rejected

    def close(self) -> None:
        self.closed = True


def options(spool: Path, **kw: object) -> EngineOptions:
    base: dict[str, object] = {
        "spool_dir": spool,
        "retry": FAST_RETRY,
        "rescan_interval": 0.2,
        "status_interval": 0.2,
        "grace": 2.0,
    }
    base.update(kw)
    return EngineOptions(**base)  # type: ignore[arg-type]


async def wait_until(predicate: Callable[[], bool], timeout: float = 10, what: str = "") -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


async def run_with(
    sidecar: Sidecar, body: Callable[[], Awaitable[None]], *, stop: bool = True
) -> RunReport:
    report: list[RunReport] = []

    async def run() -> None:
        report.append(await sidecar.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await wait_until(lambda: sidecar._tg is not None or bool(report))
        with anyio.fail_after(30):
            await body()
        if stop:
            sidecar.stop("test done")
    return report[0]


async def test_socket_lines_are_in_the_spool_before_the_ack(tmp_path: Path) -> None:
    spool, sock = tmp_path / "spool", tmp_path / "s.sock"
    sink = Collect()
    sidecar = Sidecar(options(spool, socket_path=sock), [sink])

    async def body() -> None:
        await wait_until(sock.exists)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        lines = [event_line(i) for i in range(3)]
        async with await anyio.connect_unix(sock) as stream:
            await stream.send(b"".join(lines))
            ack = await stream.receive()
            # persisted before acknowledged: the lines are on disk the moment the ACK arrives
            on_disk = b"".join(p.read_bytes() for p in list_segments(spool))
            assert ack == format_ack(3)
            assert on_disk == b"".join(lines)
        await wait_until(lambda: len(sink.ids) == 3)

    report = await run_with(sidecar, body)
    assert report.sinks[0].delivered == 3 and not report.pending
    assert not sock.exists()  # removed on the way out
    assert list_segments(spool) == []  # sealed at stop, delivered, retired


async def test_oversized_socket_line_is_dead_lettered_acked_and_the_connection_goes_on(
    tmp_path: Path,
) -> None:
    spool, sock = tmp_path / "spool", tmp_path / "s.sock"
    sink = Collect()
    sidecar = Sidecar(options(spool, socket_path=sock, max_line_bytes=2000), [sink])

    async def body() -> None:
        await wait_until(sock.exists)
        async with await anyio.connect_unix(sock) as stream:
            await stream.send(event_line(0) + b"z" * 5000 + b"\n")
            acks = b""
            while sum(int(a.split()[1]) for a in acks.splitlines()) < 2:
                acks += await stream.receive()
            assert sum(int(a.split()[1]) for a in acks.splitlines()) == 2
            await stream.send(event_line(1))
            assert await stream.receive() == format_ack(1)
        await wait_until(lambda: len(sink.ids) == 2)

    await run_with(sidecar, body)
    records = read_deadletter(SpoolLayout(spool).deadletter)
    assert [(r["kind"], r["length"], r["truncated"]) for r in records] == [
        ("oversized", 5000, False)
    ]
    assert "exceeds the 2000-byte limit" in str(records[0]["reason"])


async def test_failing_endpoint_is_retried_until_it_accepts(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    ids = write_spool(spool, 120)
    sink = Collect(fail_first=4)
    sidecar = Sidecar(options(spool, once=True), [sink])
    report = await sidecar.run()
    assert set(sink.ids) == ids and len(sink.ids) == 120
    assert sidecar.runners[0].stats.failures == 4
    assert report.sinks[0].delivered == 120 and not report.pending
    assert sidecar.runners[0].stats.last_error is not None
    assert "endpoint down" in sidecar.runners[0].stats.last_error


async def test_give_up_moves_the_batch_to_dead_letter_never_drops_it(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    write_spool(spool, 30)
    broken = Collect("broken", max_batch=10, fail_first=10**9)
    healthy = Collect("healthy")
    retry = RetryPolicy(initial_delay=0.01, max_delay=0.02, give_up_attempts=2)
    sidecar = Sidecar(options(spool, once=True, retry=retry), [broken, healthy])
    report = await sidecar.run()
    assert len(healthy.ids) == 30 and broken.ids == []
    records = read_deadletter(SpoolLayout(spool).deadletter)
    assert len(records) == 30 and {r["kind"] for r in records} == {"gave_up"}
    assert {r["sink"] for r in records} == {"broken"}
    assert "gave up after 2 attempts" in str(records[0]["reason"])
    assert all(r["line"] and r["segment"] and isinstance(r["offset"], int) for r in records)
    assert not report.pending and report.deadlettered == 30


async def test_rejected_items_go_to_dead_letter_with_the_reason(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    write_spool(spool, 20)
    sink = Collect(max_batch=5)
    sink.reject = lambda batch: [Rejection(0, "HTTP 400: bad facet")]
    await Sidecar(options(spool, once=True), [sink]).run()
    records = read_deadletter(SpoolLayout(spool).deadletter)
    assert len(sink.ids) == 16 and len(records) == 4
    assert all(r["kind"] == "rejected" and "HTTP 400" in str(r["reason"]) for r in records)
    assert load_cursor(SpoolLayout(spool).cursor("collect"), "x").dead_lettered == 4


async def test_translation_error_is_dead_lettered_and_delivery_goes_on(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    write_spool(spool, 10)

    class Picky(Collect):
        def translate(self, event: Event) -> Sequence[str]:
            if event.event_id.startswith(("0", "1", "2", "3")):
                raise KeyError("no such column")
            return (event.event_id,)

    sink = Picky()
    await Sidecar(options(spool, once=True), [sink]).run()
    records = read_deadletter(SpoolLayout(spool).deadletter)
    assert len(sink.ids) + len(records) == 10
    assert all(r["kind"] == "translate_error" and "KeyError" in str(r["reason"]) for r in records)


async def test_io_errors_on_the_sidecars_own_files_are_retried_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cursor that cannot be saved after a delivery means: deliver that batch again (at least
    once); a spool read that fails means: read again later. Neither stops the sidecar."""
    import floe_sidecar.engine.pipeline as pipeline_module
    from floe_sidecar.engine.reader import SpoolReader

    spool = tmp_path / "spool"
    ids = write_spool(spool, 30)
    real_save, real_read = pipeline_module.save_cursor, SpoolReader.read
    trouble = {"save": 1, "read": 1}

    def flaky_save(*args: object, **kwargs: object) -> None:
        if trouble["save"]:
            trouble["save"] -= 1
            raise OSError(28, "No space left on device")
        real_save(*args, **kwargs)  # type: ignore[arg-type]

    def flaky_read(self: SpoolReader, max_lines: int) -> object:
        if trouble["read"]:
            trouble["read"] -= 1
            raise PermissionError(13, "Permission denied")
        return real_read(self, max_lines)

    monkeypatch.setattr(pipeline_module, "save_cursor", flaky_save)
    monkeypatch.setattr(SpoolReader, "read", flaky_read)
    sink = Collect(max_batch=10)
    sidecar = Sidecar(options(spool, once=True), [sink])
    report = await sidecar.run()
    assert set(sink.ids) == ids and len(sink.ids) == 40  # the first batch twice
    assert not report.pending and sidecar.runners[0].stats.failures == 2
    assert sidecar.runners[0].pipeline.cursor.delivered == 30  # counted once it was saved


async def test_a_crashed_runner_is_restarted_alone_from_its_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from floe_sidecar.engine.runner import SinkRunner

    spool = tmp_path / "spool"
    ids = write_spool(spool, 25)
    real = SinkRunner._deliver
    crashed: list[str] = []

    async def buggy(self: SinkRunner, batch: object) -> None:
        if self.name == "buggy" and not crashed:
            crashed.append(self.name)
            raise RuntimeError("a bug in the runner")
        await real(self, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(SinkRunner, "_deliver", buggy)
    buggy_sink, other = Collect("buggy", max_batch=10), Collect("other")
    sidecar = Sidecar(options(spool, once=True), [buggy_sink, other])
    report = await sidecar.run()
    assert crashed and set(buggy_sink.ids) == ids and len(buggy_sink.ids) == 25
    assert set(other.ids) == ids and not report.pending


async def test_a_hung_sink_does_not_hold_back_another_nor_the_stop(tmp_path: Path) -> None:
    spool, sock = tmp_path / "spool", tmp_path / "s.sock"
    hung = Collect("hung", max_batch=5)
    hung.gate = threading.Event()  # never set: deliver blocks forever
    fast = Collect("fast")
    sidecar = Sidecar(options(spool, socket_path=sock, grace=0.5), [hung, fast])
    started = time.monotonic()

    async def body() -> None:
        await wait_until(sock.exists)
        async with await anyio.connect_unix(sock) as stream:
            for batch in range(5):
                await stream.send(
                    b"".join(event_line(i) for i in range(batch * 20, batch * 20 + 20))
                )
                await stream.receive()
        await wait_until(lambda: len(fast.ids) == 100, timeout=5)
        assert hung.ids == [] and hung.attempts == 1

    report = await run_with(sidecar, body)
    assert time.monotonic() - started < 8  # the stop did not wait for the hung deliver
    by_name = {s.name: s for s in report.sinks}
    assert by_name["fast"].pending_events == 0
    assert by_name["hung"].pending_events == 100  # kept for the next run
    assert report.cut_off
    assert len(list_segments(spool)) == 1  # still needed by "hung"
    hung.gate.set()


async def test_segments_are_retired_only_when_every_sink_is_past_them(tmp_path: Path) -> None:
    spool, archive = tmp_path / "spool", tmp_path / "archive"
    write_spool(spool, 50)
    slow = Collect("slow")
    slow.gate = threading.Event()
    fast = Collect("fast")
    sidecar = Sidecar(options(spool, archive_dir=archive), [slow, fast])

    async def body() -> None:
        await wait_until(lambda: len(fast.ids) == 50)
        await anyio.sleep(0.5)  # housekeeping ran a few times
        assert len(list_segments(spool)) == 1
        slow.gate.set()  # type: ignore[union-attr]
        await wait_until(lambda: len(slow.ids) == 50)
        await wait_until(lambda: not list_segments(spool), timeout=5)

    await run_with(sidecar, body)
    archived = list(archive.iterdir())
    assert len(archived) == 1 and archived[0].read_bytes().count(b"\n") == 50
    assert stat.S_IMODE(archive.stat().st_mode) == 0o700


class HoldsSecondBatch(Collect):
    """Delivers its first batch, then blocks in ``deliver`` until ``release`` is set."""

    def __init__(self, name: str, max_batch: int) -> None:
        super().__init__(name, max_batch)
        self.release = threading.Event()

    def deliver(self, batch: Sequence[str]) -> Sequence[Rejection]:
        if self.attempts >= 1:
            self.release.wait()
        return super().deliver(batch)


async def test_while_a_sink_is_behind_retiring_waits_a_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivery first: a segment every sink is done with waits while one sink still works
    through a backlog (its unlinks would slow the drain), but at most RETIRE_WHILE_BEHIND_S;
    once every sink is caught up, what is consumed goes at once."""
    monkeypatch.setattr(app_module, "RETIRE_WHILE_BEHIND_S", 3.0)
    spool = tmp_path / "spool"
    write_spool(spool, 10)
    first = list_segments(spool)[0]
    write_spool(spool, 10, start=10)
    assert list_segments(spool)[0] == first  # read first by both sinks: the one they finish
    slow = HoldsSecondBatch("slow", max_batch=10)
    fast = Collect("fast")
    sidecar = Sidecar(options(spool), [slow, fast])

    async def body() -> None:
        await wait_until(lambda: len(fast.ids) == 20 and len(slow.ids) == 10)
        started = time.monotonic()
        await anyio.sleep(0.8)  # housekeeping ran (every 0.2 s): the first segment stays
        assert first in list_segments(spool)
        await wait_until(lambda: first not in list_segments(spool), timeout=8)
        assert time.monotonic() - started < 5.0  # within the bound, though still behind
        assert len(slow.ids) == 10 and len(list_segments(spool)) == 1  # still behind
        slow.release.set()
        await wait_until(lambda: len(slow.ids) == 20)
        caught_up = time.monotonic()
        await wait_until(lambda: not list_segments(spool), timeout=5)
        assert time.monotonic() - caught_up < 1.5  # at once, not after the bound (3 s)

    await run_with(sidecar, body)


async def test_bad_lines_are_dead_lettered_once_whatever_the_number_of_sinks(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    good = event_line(1)
    data = (
        b"not json\n"
        + good
        + b'{"type":"run_finished","v":7}\n'
        + b'{"type":"mystery"}\n'
        + b"tail"
    )
    (spool / "0001.ndjson").write_bytes(data)
    sinks = [Collect(f"s{i}") for i in range(3)]
    report = await Sidecar(options(spool, once=True), sinks).run()
    records = read_deadletter(SpoolLayout(spool).deadletter)
    assert [(r["kind"], r["offset"]) for r in records] == [
        ("bad_line", 0),
        ("bad_line", 9 + len(good)),
        ("bad_line", 9 + len(good) + 30),
        ("fragment", len(data) - 4),
    ]
    assert "newer than this reader" in str(records[1]["reason"])
    assert "unknown event type 'mystery'" in str(records[2]["reason"])
    assert all(len(s.ids) == 1 for s in sinks)
    assert report.deadlettered == 4 and not report.pending


async def test_a_truncated_segment_is_noted_once_and_read_again(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    path = spool / "0001-writer.ndjson"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # its writer is alive: the segment is not sealed
    try:
        os.write(fd, b"".join(event_line(i) for i in range(3)))
        sinks = [Collect("a"), Collect("b")]
        await Sidecar(options(spool, once=True), sinks).run()
        os.ftruncate(fd, 0)  # the writer starts over in place (same inode, shorter)
        os.pwrite(fd, event_line(7), 0)
        again = [Collect("a"), Collect("b")]
        await Sidecar(options(spool, once=True), again).run()
    finally:
        os.close(fd)
    assert [s.ids for s in again] == [[event_id_of(7)], [event_id_of(7)]]
    notes = [r for r in read_deadletter(SpoolLayout(spool).deadletter) if r["kind"] == "note"]
    assert len(notes) == 1 and notes[0]["segment"] == path.name
    assert "truncated" in str(notes[0]["reason"])


async def test_socket_group_mode(tmp_path: Path) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    spool, sock = tmp_path / "spool", tmp_path / "s.sock"
    sidecar = Sidecar(options(spool, socket_path=sock, socket_group=group), [Collect()])

    async def body() -> None:
        await wait_until(sock.exists)
        st = os.stat(sock)
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, os.getgid())

    await run_with(sidecar, body)


async def test_a_second_sidecar_on_the_same_spool_is_refused(tmp_path: Path) -> None:
    from floe_sidecar.app import SpoolBusyError

    spool = tmp_path / "spool"
    first = Sidecar(options(spool), [Collect()])

    async def body() -> None:
        with pytest.raises(SpoolBusyError, match="another floe-sidecar"):
            await Sidecar(options(spool, once=True), [Collect()]).run()

    await run_with(first, body)


# -- arbitrary bytes on the socket --------------------------------------------------------------


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chunks=st.lists(
        st.one_of(st.binary(max_size=300), st.integers(0, 9).map(event_line)),
        min_size=1,
        max_size=12,
    )
)
def test_arbitrary_bytes_on_the_socket(
    tmp_path_factory: pytest.TempPathFactory, chunks: list[bytes]
) -> None:
    """Property: whatever a client sends, every newline-terminated line is acknowledged exactly
    once, after it reached the spool (or, when oversized, the dead-letter file), in order; the
    unterminated rest is dead-lettered as a fragment when the client leaves."""
    root = tmp_path_factory.mktemp("sock")
    spool, sock = root / "spool", root / "s.sock"
    limit = 200
    dead = DeadLetter(root / "dead.ndjson", durable=False)

    async def main() -> int:
        undeliverable = Undeliverable(dead, root / "reported.json", limit)
        intake = SocketIntake(sock, spool, undeliverable, Wakeup(), max_line_bytes=limit)
        acked = 0
        async with anyio.create_task_group() as tg:
            await tg.start(intake.serve)
            async with await anyio.connect_unix(sock) as stream:
                sent = 0
                for chunk in chunks:
                    await stream.send(chunk) if chunk else None
                    sent += chunk.count(b"\n")
                buffer = b""
                with anyio.fail_after(10):
                    while acked < sent:
                        buffer += await stream.receive()
                        *complete, buffer = buffer.split(b"\n")
                        acked += sum(int(a.removeprefix(b"ACK ")) for a in complete)
                assert buffer == b""
            await wait_until(
                lambda: intake.stats.connections == 1 and intake.stats.open_connections == 0
            )
            tg.cancel_scope.cancel()
        return acked

    acked = anyio.run(main)
    data = b"".join(chunks)
    *complete, tail = data.split(b"\n")
    assert acked == len(complete)
    spooled = b"".join(p.read_bytes() for p in list_segments(spool))
    assert spooled == b"".join(x + b"\n" for x in complete if len(x) <= limit)
    kinds = [r["kind"] for r in read_deadletter(root / "dead.ndjson")]
    assert kinds == ["oversized"] * sum(len(x) > limit for x in complete) + (
        ["fragment"] if tail else []
    )
