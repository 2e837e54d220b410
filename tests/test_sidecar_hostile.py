"""Hostile and unlucky input to the sidecar (issue 11): no silent loss, no poison pill, no escape
from the spool. One regression test per finding; the property test over mixed lines is in
``test_sidecar_hostile_property.py``."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest
from support.data import event_id_of, event_line
from support.sidecar import write_spool
from test_sidecar_engine import Collect, options, run_with, wait_until

from floe_core.events import Event, EventError, decode_event
from floe_core.layout import SpoolLayout
from floe_core.spool import SpoolWriter, list_segments
from floe_sidecar.app import RunReport, Sidecar
from floe_sidecar.engine.deadletter import read_deadletter
from floe_sidecar.replay import replay_files
from floe_sidecar.sinks.base import Rejection

pytestmark = pytest.mark.anyio

#: What msgspec (and json) cannot decode without running out of stack.
DEEP = b'{"a":' * 50000 + b"1" + b"}" * 50000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _acks(data: bytes) -> int:
    return sum(int(a.removeprefix(b"ACK ")) for a in data.splitlines() if a)


# --- finding 1: deep nesting ------------------------------------------------------------------


def test_deep_nesting_is_an_event_error() -> None:
    with pytest.raises(EventError, match="nested too deeply"):
        decode_event(DEEP)


async def test_deep_nesting_on_the_socket_loses_no_acknowledged_event(tmp_path: Path) -> None:
    spool, sock = tmp_path / "spool", tmp_path / "s.sock"
    sink = Collect()
    sidecar = Sidecar(options(spool, socket_path=sock), [sink])

    async def body() -> None:
        await wait_until(sock.exists)
        async with await anyio.connect_unix(sock) as stream:
            first = b"".join(event_line(i) for i in range(10))
            await stream.send(first + DEEP + b"\n" + b"".join(event_line(i) for i in range(10, 20)))
            acked = b""
            while _acks(acked) < 21:
                acked += await stream.receive()
            await anyio.sleep(0.5)
            await stream.send(b"".join(event_line(i) for i in range(20, 30)))
            while _acks(acked) < 31:
                acked += await stream.receive()
        await wait_until(lambda: len(set(sink.ids)) == 30)

    await run_with(sidecar, body)
    assert set(sink.ids) == {event_id_of(i) for i in range(30)}
    records = read_deadletter(SpoolLayout(spool).deadletter)
    assert [(r["kind"], r["length"]) for r in records] == [("bad_line", len(DEEP))]
    assert "nested too deeply" in str(records[0]["reason"])


def test_deep_nesting_in_replay_is_reported_not_a_crash(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with SpoolWriter(spool) as writer:
        writer.append(event_line(0) + DEEP + b"\n" + event_line(1))
    out = io.BytesIO()
    summary = replay_files(list_segments(spool), [], out)
    assert (summary.events, summary.errors) == (2, 1)
    assert b"nested too deeply" in out.getvalue()


def test_deep_nesting_in_show_lineage_is_skipped(tmp_path: Path) -> None:
    from floe_cli.show import show_lineage

    lineage = tmp_path / "openlineage.ndjson"
    good = (
        b'{"eventType": "START", "eventTime": "2026-01-01T00:00:00Z", '
        b'"run": {"runId": "r1", "facets": {}}, "job": {"namespace": "ns", "name": "j"}, '
        b'"inputs": [], "outputs": []}\n'
    )
    lineage.write_bytes(DEEP + b"\n" + good)
    out = io.StringIO()
    show_lineage(lineage, None, out)
    assert "ns" in out.getvalue()


# --- finding 2: the dead-letter file cannot be written ----------------------------------------


async def test_an_unwritable_dead_letter_holds_the_cursor_before_the_bad_line(
    tmp_path: Path,
) -> None:
    """Disk full for the dead-letter file: the bad line and everything after it stay pending
    (never skipped); once the file can be written, they are dead-lettered and delivered."""
    spool = tmp_path / "spool"
    layout = SpoolLayout(spool)
    with SpoolWriter(spool) as writer:
        for start in (0, 5, 10):
            writer.append(b"".join(event_line(i) for i in range(start, start + 5)) + b"{bad\n")
    layout.deadletter.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.mkdir(layout.deadletter, 0o700)  # any write to the dead-letter file fails (EISDIR)
    sink = Collect(max_batch=4)
    sidecar = Sidecar(options(spool), [sink])

    async def body() -> None:
        await wait_until(lambda: sidecar.runners[0].stats.failures >= 2)
        assert set(sink.ids) <= {event_id_of(i) for i in range(5)}
        os.rmdir(layout.deadletter)
        await wait_until(lambda: len(set(sink.ids)) == 15)

    await run_with(sidecar, body)
    records = read_deadletter(layout.deadletter)
    assert [(r["kind"], r["line"]) for r in records] == [("bad_line", "{bad")] * 3


# --- finding 3: one event no exporter can encode ----------------------------------------------


class Poisoned(Collect):
    """Raises what an exporter raises on an item it cannot encode, for the whole batch."""

    def __init__(self, poison: set[str], **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.poison = poison

    def deliver(self, batch: Sequence[str]) -> Sequence[Rejection]:
        if self.poison.intersection(batch):
            self.attempts += 1
            raise ValueError("Value out of range")
        return super().deliver(batch)


async def test_an_item_that_cannot_be_encoded_is_dead_lettered_and_the_rest_delivered(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    ids = write_spool(spool, 54)
    poison = {event_id_of(7), event_id_of(40)}
    sink = Poisoned(poison, max_batch=16)
    report = await Sidecar(options(spool, once=True), [sink]).run()
    assert set(sink.ids) == ids - poison and not report.pending
    records = read_deadletter(SpoolLayout(spool).deadletter)
    assert sorted(str(r["line"]) for r in records) == sorted(
        event_line(i).decode().rstrip("\n") for i in (7, 40)
    )
    assert all(r["kind"] == "rejected" for r in records)
    assert all(
        "permanent error: ValueError: Value out of range" in str(r["reason"]) for r in records
    )
    assert sidecar_failures(report) == 0


def sidecar_failures(report: RunReport) -> int:
    return sum(1 for s in report.sinks if s.pending_events)


def test_a_span_past_the_otlp_time_range_is_dead_lettered_not_retried_forever(
    tmp_path: Path,
) -> None:
    """Real trace sink, real OTLP/HTTP receiver: a node finished in the year 3000 overflows
    the span's uint64 nanoseconds; that span is dead-lettered, every other span arrives."""
    from datetime import UTC, datetime

    import msgspec
    from support.data import run_events
    from support.otlp_receivers import HttpReceiver
    from test_otel_export import _sink

    from floe_core.events import NodeFinished, encode_event

    events = run_events()
    target = next(i for i, e in enumerate(events) if isinstance(e, NodeFinished))
    events[target] = msgspec.structs.replace(
        events[target], finished_at=datetime(3000, 1, 1, tzinfo=UTC)
    )
    spool = tmp_path / "spool"
    with SpoolWriter(spool) as writer:
        writer.append(b"".join(encode_event(e) for e in events))
    with HttpReceiver(0) as receiver:
        sink = _sink(tmp_path, "http/protobuf", receiver.port)
        expected = sum(len(sink.translate(e)) for e in events)
        report = anyio.run(Sidecar(options(spool, once=True), [sink]).run)
        assert not report.pending
        assert receiver.span_count() == expected - 1
    records = read_deadletter(SpoolLayout(spool).deadletter)
    assert len(records) == 1 and records[0]["kind"] == "rejected"
    assert "out of range" in str(records[0]["reason"])
    assert str(records[0]["line"]) == encode_event(events[target]).decode().rstrip("\n")


# --- issue 17, item 8: one event, several items ------------------------------------------------


class Twice(Collect):
    """Two items per event (as OpenLineage makes of invocation_started); rejects the second
    item of event 3 wherever it lands in a batch."""

    def translate(self, event: Event) -> Sequence[str]:
        return (f"{event.event_id}/a", f"{event.event_id}/b")

    def deliver(self, batch: Sequence[str]) -> Sequence[Rejection]:
        self.attempts += 1
        bad = f"{event_id_of(3)}/b"
        rejected = [Rejection(i, "HTTP 400") for i, item in enumerate(batch) if item == bad]
        self.ids.extend(item for item in batch if item != bad)
        return rejected


async def test_a_rejected_item_of_a_multi_item_event_dead_letters_its_own_line(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    write_spool(spool, 10)
    sink = Twice(max_batch=5)
    report = await Sidecar(options(spool, once=True), [sink]).run()
    assert not report.pending
    assert len(sink.ids) == 19 and len(set(sink.ids)) == 19  # each delivered once, not re-sent
    records = read_deadletter(SpoolLayout(spool).deadletter)
    assert [(r["kind"], r["line"]) for r in records] == [
        ("rejected", event_line(3).decode().rstrip("\n"))
    ]
    segment = list_segments(spool)
    assert not segment  # delivered and retired
    assert records[0]["offset"] == sum(len(event_line(i)) for i in range(3))


# --- finding 6: symbolic links in the spool -----------------------------------------------------


async def test_a_segment_that_is_a_link_is_never_read(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    ids = write_spool(spool, 5)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"root:hunter2\n{also secret}\n")
    (spool / "20000101T000000.000000000-x.ndjson").symlink_to(secret)
    sink = Collect()
    report = await Sidecar(options(spool, once=True), [sink]).run()
    assert set(sink.ids) == ids and not report.pending
    dead = SpoolLayout(spool).deadletter.read_bytes()
    assert b"hunter2" not in dead and b"also secret" not in dead
    records = read_deadletter(SpoolLayout(spool).deadletter)
    assert [r["kind"] for r in records] == ["note"]
    assert "symbolic link" in str(records[0]["reason"])
    assert secret.read_bytes() == b"root:hunter2\n{also secret}\n"


async def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(
    tmp_path: Path,
) -> None:
    from floe_core.errors import UsageError

    spool = tmp_path / "spool"
    write_spool(spool, 1)
    layout = SpoolLayout(spool)
    layout.ensure()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    layout.lock.symlink_to(victim)
    with pytest.raises(UsageError, match="symbolic link"):
        await Sidecar(options(spool, once=True), [Collect()]).run()
    assert victim.read_bytes() == b"precious\n"


async def test_a_dead_letter_file_that_is_a_link_is_never_appended_to(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with SpoolWriter(spool) as writer:
        writer.append(event_line(0) + b"{bad\n" + event_line(1))
    layout = SpoolLayout(spool)
    layout.ensure()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    layout.deadletter.symlink_to(victim)
    sink = Collect()
    report = await Sidecar(options(spool, once=True, once_timeout=1.5), [sink]).run()
    assert victim.read_bytes() == b"precious\n"
    assert report.pending  # the bad line (and what follows) waits for a dead-letter file
    assert event_id_of(1) not in sink.ids


def test_a_spool_given_through_a_link_is_refused(tmp_path: Path) -> None:
    from floe_sidecar.cli import main

    real = tmp_path / "shared"
    real.mkdir(mode=0o755)
    (real / "other.ndjson").write_bytes(event_line(0))
    link = tmp_path / "spool"
    link.symlink_to(real)
    code = main(["--spool", str(link), "--once", "--no-default-sinks", "--sink", "console"])
    assert code == 2
    assert (real.stat().st_mode & 0o777) == 0o755  # not chmod-ed
    assert (real / "other.ndjson").exists()  # not consumed


# --- finding 13: a read-only spool --------------------------------------------------------------


def test_a_read_only_spool_is_a_clear_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """EROFS cannot be made here without a mount (the tests run as root, who writes through
    0500): the lock's open gets the error a read-only file system gives."""
    import errno

    import floe_sidecar.app as app_module
    from floe_sidecar.cli import main

    def read_only(*args: object, **kwargs: object) -> int:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(app_module, "open_under", read_only)
    spool = tmp_path / "spool"
    write_spool(spool, 1)
    code = main(["--spool", str(spool), "--once", "--no-default-sinks", "--sink", "console"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot take the spool (Read-only file system)" in err
    assert "Traceback" not in err


# --- finding 12: status, show, replay on hostile files --------------------------------------


def test_status_survives_a_torn_dead_letter_line_and_a_negative_offset(tmp_path: Path) -> None:
    from floe_sidecar.cli import main
    from floe_sidecar.engine.cursor import Cursor, SegmentPosition, save_cursor
    from floe_sidecar.engine.status import spool_status

    spool = tmp_path / "spool"
    write_spool(spool, 3)
    layout = SpoolLayout(spool).ensure()
    layout.deadletter.write_bytes(b'{"kind": "bad_line"}\n{"kind": "bad_l')
    name = list_segments(spool)[0].name
    st = os.stat(spool / name)
    save_cursor(
        layout.cursor("file"),
        Cursor(owner="file", positions={name: SegmentPosition(ino=st.st_ino, dev=st.st_dev)}),
    )
    raw = layout.cursor("file").read_bytes().replace(b'"offset":0', b'"offset":-5')
    layout.cursor("file").write_bytes(raw)
    status = spool_status(layout)
    assert status.deadletter_records == 2
    assert status.sinks[0].pending_events == 3  # the bad cursor is not trusted: all pending
    elsewhere = tmp_path / "dead.ndjson"
    elsewhere.write_bytes(b"{}\n" * 7)
    assert main(["status", "--spool", str(spool), "--dead-letter", str(elsewhere)]) == 0
    assert spool_status(SpoolLayout(spool, elsewhere)).deadletter_records == 7


def test_show_traces_on_a_file_without_newlines_holds_one_bounded_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import io, sys\n"
        "from pathlib import Path\n"
        "from floe_core.errors import NothingToShow\n"
        "from floe_cli.show import show_traces\n"
        "try:\n"
        "    show_traces(Path(sys.argv[1]), None, io.StringIO())\n"
        "except NothingToShow:\n"
        "    pass\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over an exec from the forking parent
        # (pytest, large after a whole suite), while VmHWM belongs to this address space alone.
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
    )
    endless = tmp_path / "zeros.jsonl"
    with endless.open("wb") as f:  # 300 MB of zeros, no newline: /dev/zero, but ending
        f.truncate(300 * 1024 * 1024)
    out = subprocess.run(
        [sys.executable, "-c", code, str(endless)], capture_output=True, check=True, timeout=120
    )
    peak_kb = int(out.stdout.split()[-1])
    assert peak_kb < 150 * 1024, f"peak RSS {peak_kb} kB reading a 300 MB line"


def test_replay_says_what_a_directory_is_and_reads_a_fifo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading

    from floe_sidecar.cli import main

    assert main(["replay", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("wb") as f:
            f.write(event_line(0) + event_line(1))

    writer = threading.Thread(target=feed)
    writer.start()
    assert main(["replay", str(fifo), "--no-default-sinks"]) == 0
    writer.join()
    captured = capsys.readouterr()
    assert "2 events" in captured.err and event_id_of(1) in captured.out


# --- finding 9: out of file descriptors in accept ------------------------------------------------


def test_running_out_of_descriptors_in_accept_backs_off_and_keeps_the_socket(
    tmp_path: Path,
) -> None:
    """A real sidecar under a descriptor limit of 64 (``ulimit -n``), 150 idle connections:
    it stays up, the socket stays, and once they go a new client is served."""
    import resource
    import socket as socketlib

    from support.loopback import wait_for
    from support.sidecar import SidecarProcess

    spool, sock = tmp_path / "spool", tmp_path / "s.sock"
    out = tmp_path / "out.ndjson"
    proc = SidecarProcess(
        tmp_path / "logs", "--spool", spool, "--socket", sock, "--no-default-sinks",
        "--sink", f"file:{out}",
    )  # fmt: skip
    try:
        proc.wait_listening()
        resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (64, 64))
        idle = []
        for _ in range(150):
            client = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
            client.connect(str(sock))
            idle.append(client)
        wait_for(lambda: "cannot accept a connection" in proc.stderr(), 10, "EMFILE backoff")
        assert proc.alive() and sock.exists()
        for client in idle:
            client.close()
        with socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM) as client:
            client.settimeout(20)
            client.connect(str(sock))
            client.sendall(event_line(0))
            assert client.recv(64) == b"ACK 1\n"
        assert proc.alive() and sock.exists()
    finally:
        proc.terminate()


# --- finding 10: bounded memory on the socket ------------------------------------------


async def test_unfinished_lines_are_bounded_in_total_and_idle_connections_time_out(
    tmp_path: Path,
) -> None:
    from floe_sidecar.engine.deadletter import DeadLetter
    from floe_sidecar.engine.undeliverable import Undeliverable
    from floe_sidecar.engine.wakeup import Wakeup
    from floe_sidecar.sources.socket import FRAGMENT_HEAD_BYTES, SocketIntake

    spool, sock = tmp_path / "spool", tmp_path / "s.sock"
    dead = DeadLetter(tmp_path / "dead.ndjson", durable=False)
    undeliverable = Undeliverable(dead, tmp_path / "reported.json", 1024 * 1024)
    limit = 1024 * 1024
    intake = SocketIntake(
        sock, spool, undeliverable, Wakeup(), max_buffered_bytes=limit, idle_timeout=0.5
    )
    peak = 0
    async with anyio.create_task_group() as tg:
        await tg.start(intake.serve)
        streams = []
        for _ in range(10):
            stream = await anyio.connect_unix(sock)
            streams.append(stream)
            with contextlib.suppress(anyio.BrokenResourceError):  # shed while sending
                await stream.send(b'{"partial": "' + b"x" * 300_000)  # never finished
            peak = max(peak, intake.stats.buffered_bytes)
        await wait_until(lambda: intake.stats.shed >= 6, what="connections shed")
        peak = max(peak, intake.stats.buffered_bytes)
        await wait_until(lambda: intake.stats.idle_closed >= 1, what="idle timeout")
        await wait_until(lambda: intake.stats.open_connections == 0, what="all closed")
        for stream in streams:
            await stream.aclose()
        tg.cancel_scope.cancel()
    assert peak <= limit + 64 * 1024
    assert intake.stats.buffered_bytes == 0
    records = read_deadletter(tmp_path / "dead.ndjson")
    assert len(records) == 10 and {r["kind"] for r in records} == {"fragment"}
    assert all(len(str(r["line"])) <= FRAGMENT_HEAD_BYTES for r in records)
    assert all(int(str(r["length"])) > FRAGMENT_HEAD_BYTES and r["truncated"] for r in records)


# --- finding 4: empty segments, segments that appear while a backlog drains ---------------


async def test_an_empty_sealed_segment_is_retired(tmp_path: Path) -> None:
    """A writer whose first write failed leaves an empty segment; nobody has a line of it to
    move past, so only its emptiness can retire it."""
    spool = tmp_path / "spool"
    ids = write_spool(spool, 3)
    writer = SpoolWriter(spool, prefix="adapter")
    writer._open_new_segment()  # created, then the disk refused the write
    writer.close()
    assert len(list_segments(spool)) == 2
    sink = Collect()
    await Sidecar(options(spool, once=True), [sink]).run()
    assert set(sink.ids) == ids
    assert list_segments(spool) == []


def test_segments_written_while_a_backlog_drains_are_all_read(tmp_path: Path) -> None:
    from floe_sidecar.engine.cursor import SegmentPosition
    from floe_sidecar.engine.reader import SpoolReader

    spool = tmp_path / "spool"
    for i in range(30):
        with SpoolWriter(spool, prefix="adapter") as writer:
            writer.append(event_line(i))
    reader = SpoolReader(spool, dict[str, SegmentPosition]())
    seen: list[bytes] = []
    late = 30
    while (piece := reader.read(5)) is not None:
        seen += piece.lines
        if late < 40:  # a new segment after each read: found without waiting for a relist
            with SpoolWriter(spool, prefix="adapter") as writer:
                writer.append(event_line(late))
            late += 1
    reader.close()
    assert sorted(seen) == sorted(event_line(i).rstrip(b"\n") for i in range(40))
