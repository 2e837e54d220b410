"""The socket intake in-process, part by part (issue 17): what the bind refuses and replaces, the
fields of every log line an operator reads, the counters in the status, the connection limit,
sealing when idle, and what a failed spool write leaves behind. The end-to-end ACK protocol is in
``test_sidecar_engine.py``; hostile clients in ``test_sidecar_hostile.py``."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import logging
import os
import resource
import socket
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from support.data import event_line
from test_sidecar_engine import wait_until

from floe_core.errors import SocketInStateError
from floe_core.spool import is_sealed, list_segments
from floe_core.transport import format_ack
from floe_sidecar.engine.deadletter import DeadLetter, read_deadletter
from floe_sidecar.engine.undeliverable import Undeliverable
from floe_sidecar.engine.wakeup import Wakeup
from floe_sidecar.sources.socket import SocketIntake, bind_unix_socket

pytestmark = pytest.mark.anyio

LOGGER = "floe_sidecar.intake"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _open_fds() -> set[int]:
    """This process's open descriptors (not the one that listed them, closed by then)."""
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(int(name), fcntl.F_GETFD)
            fds.add(int(name))
    return fds


def _records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.getMessage() == message]


def _intake(tmp_path: Path, **kw: object) -> SocketIntake:
    dead = DeadLetter(tmp_path / "dead.ndjson", durable=False)
    undeliverable = Undeliverable(dead, tmp_path / "reported.json", 1024 * 1024)
    return SocketIntake(
        tmp_path / "s.sock",
        tmp_path / "spool",
        undeliverable,
        kw.pop("wakeup", Wakeup()),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def serving(intake: SocketIntake) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        await tg.start(intake.serve)
        yield
        # every client has left: let the intake finish with each connection before it stops
        await wait_until(lambda: intake.stats.open_connections == 0)
        tg.cancel_scope.cancel()


async def _receive_all(stream: anyio.abc.SocketStream) -> bytes:
    """Everything the intake sends until it closes the connection."""
    data = b""
    with anyio.fail_after(10):
        while True:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return data


# -- bind ----------------------------------------------------------------------------------------


def test_bind_creates_its_directory_owner_only_and_reuses_an_existing_one(tmp_path: Path) -> None:
    path = tmp_path / "run" / "floe" / "s.sock"
    sock = bind_unix_socket(path)
    sock.close()
    os.unlink(path)
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    with bind_unix_socket(path):  # the directory is there now: used as it is
        assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_bind_listens_nonblocking_with_a_deep_backlog(tmp_path: Path) -> None:
    """Hundreds of clients can queue while the intake is busy (each would otherwise time out and
    spool the line itself); the socket never blocks the event loop."""
    path = tmp_path / "s.sock"
    with bind_unix_socket(path) as server:
        assert server.getblocking() is False
        clients = []
        try:
            for _ in range(600):  # none accepted yet
                client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                clients.append(client)
                client.setblocking(False)
                client.connect(str(path))  # BlockingIOError once the backlog is full
        finally:
            for client in clients:
                client.close()


def test_bind_keeps_the_callers_umask(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        with bind_unix_socket(tmp_path / "s.sock"):
            assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)


def test_the_socket_is_owner_only_from_the_moment_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its mode as bind leaves it, before the chmod: no window where another user connects."""
    seen: list[int] = []
    real_chmod = os.chmod

    def chmod(path: Path, mode: int) -> None:
        seen.append(stat.S_IMODE(os.lstat(path).st_mode))
        real_chmod(path, mode)

    monkeypatch.setattr(os, "chmod", chmod)
    with bind_unix_socket(tmp_path / "s.sock"):
        pass
    assert seen == [0o600]


def test_bind_refuses_a_path_that_is_not_a_socket_and_leaves_it(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    path.write_text("an operator's file\n")
    with pytest.raises(SocketInStateError) as raised:
        bind_unix_socket(path)
    assert str(raised.value) == f"{path} exists and is not a socket; not replacing it"
    assert path.read_text() == "an operator's file\n"


def test_bind_refuses_a_socket_another_process_listens_on(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with bind_unix_socket(path):
        inode = os.stat(path).st_ino
        before = _open_fds()
        with pytest.raises(SocketInStateError) as raised:
            bind_unix_socket(path)
        assert str(raised.value) == f"{path}: another process is listening on this socket"
        assert os.stat(path).st_ino == inode  # the other one's socket is left alone
        assert _open_fds() == before  # the probe is closed


def test_bind_replaces_a_stale_socket_left_by_a_dead_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays; nobody listens
    before = _open_fds()
    with bind_unix_socket(path) as server:
        assert _open_fds() == before | {server.fileno()}  # the probe was closed
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))


def test_bind_refuses_an_unknown_group(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with pytest.raises(SocketInStateError) as raised:
        bind_unix_socket(path, group="no-such-group-floe")
    assert str(raised.value) == "--socket-group 'no-such-group-floe': no such group"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert not path.exists()


def test_bind_shares_with_a_group(tmp_path: Path) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    path = tmp_path / "s.sock"
    with bind_unix_socket(path, group=group):
        st = os.stat(path)
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, os.getgid())
        assert st.st_uid == os.getuid()  # the group changes, never the owner


def test_a_failed_bind_leaks_no_descriptor(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 120)  # longer than a socket address can be
    before = _open_fds()
    with pytest.raises(OSError):
        bind_unix_socket(path)
    assert _open_fds() == before


# -- serve: the socket's life --------------------------------------------------------------------


async def test_serve_logs_the_socket_and_removes_only_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    intake = _intake(tmp_path)
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with serving(intake):
        [listening] = _records(caplog, "listening")
        assert listening.socket == str(intake.path)  # type: ignore[attr-defined]
        assert listening.levelno == logging.INFO
    assert not intake.path.exists()  # removed on the way out

    intake = _intake(tmp_path)
    async with serving(intake):
        os.unlink(intake.path)  # someone else's socket now takes the path
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.bind(str(intake.path))
    try:
        assert stat.S_ISSOCK(os.lstat(intake.path).st_mode)  # not ours: left in place
    finally:
        other.close()

    intake = _intake(tmp_path / "gone")
    async with serving(intake):
        os.unlink(intake.path)  # removed by someone else: nothing left to remove, no error
    assert not intake.path.exists()


async def test_bind_before_serve_fails_the_start_and_serve_reuses_it(tmp_path: Path) -> None:
    intake = _intake(tmp_path)
    intake.bind()
    intake.bind()  # once only: a second bind would find its own socket listening
    inode = os.stat(intake.path).st_ino
    async with serving(intake):
        assert os.stat(intake.path).st_ino == inode
        async with await anyio.connect_unix(intake.path) as stream:
            await stream.send(event_line(0))
            assert await stream.receive() == format_ack(1)


async def test_counters_and_the_wakeup_follow_what_was_persisted(tmp_path: Path) -> None:
    wakeup = Wakeup()
    woken = wakeup.subscribe()
    intake = _intake(tmp_path, wakeup=wakeup, max_line_bytes=1000)
    async with serving(intake):
        async with await anyio.connect_unix(intake.path) as stream:
            await stream.send(
                event_line(0) + event_line(1) + b"y" * 1200 + b"\n" + b"z" * 1100 + b"\n"
            )
            acked = b""
            while sum(int(a.removeprefix(b"ACK ")) for a in acked.splitlines()) < 4:
                acked += await stream.receive()
            assert await woken.wait(1)  # the sink tasks are told at once
            assert (intake.stats.connections, intake.stats.open_connections) == (1, 1)
            assert (intake.stats.lines, intake.stats.oversized) == (2, 2)
            await stream.send(b'{"half')
            await wait_until(lambda: intake.stats.buffered_bytes == 6)
        await wait_until(lambda: intake.stats.open_connections == 0)
        assert intake.stats.connections == 1
        assert (intake.stats.fragments, intake.stats.buffered_bytes) == (1, 0)
        async with await anyio.connect_unix(intake.path) as stream:
            await stream.send(event_line(2) + b'{"more')
            assert await stream.receive() == format_ack(1)
            assert intake.stats.buffered_bytes == 6
        await wait_until(lambda: intake.stats.open_connections == 0)
        assert (intake.stats.connections, intake.stats.lines) == (2, 3)
        assert (intake.stats.fragments, intake.stats.buffered_bytes) == (2, 0)
    assert intake.stats.write_errors == 0
    records = read_deadletter(tmp_path / "dead.ndjson")
    assert [(r["kind"], r["reason"], r["length"]) for r in records] == [
        (
            "oversized",
            "socket intake: line of 1200 bytes exceeds the 1000-byte limit; "
            "only its first 1200 bytes are kept",
            1200,
        ),
        (
            "oversized",
            "socket intake: line of 1100 bytes exceeds the 1000-byte limit; "
            "only its first 1100 bytes are kept",
            1100,
        ),
        ("fragment", "socket intake: connection closed mid-line", 6),
        ("fragment", "socket intake: connection closed mid-line", 6),
    ]


async def test_a_client_gone_before_its_ack_still_has_its_half_line_dead_lettered(
    tmp_path: Path,
) -> None:
    """The lines are persisted (the client may send them again, same ids); the unfinished rest
    is recorded as a fragment like any connection that ends mid-line."""
    intake = _intake(tmp_path)
    async with serving(intake):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(intake.path))
        client.sendall(event_line(0) + b'{"half')
        client.close()  # before the intake has read it: the ACK finds nobody
        await wait_until(lambda: intake.stats.connections == 1)
    assert (intake.stats.lines, intake.stats.fragments) == (1, 1)
    [record] = read_deadletter(tmp_path / "dead.ndjson")
    assert (record["kind"], record["line"], record["length"]) == ("fragment", '{"half', 6)


async def test_only_max_connections_are_served_at_once(tmp_path: Path) -> None:
    intake = _intake(tmp_path, max_connections=1)
    async with serving(intake):
        first = await anyio.connect_unix(intake.path)
        await first.send(event_line(0))
        assert await first.receive() == format_ack(1)
        async with await anyio.connect_unix(intake.path) as second:
            await second.send(event_line(1))
            with anyio.move_on_after(0.5) as waited:
                await second.receive()
            assert waited.cancelled_caught  # waits in the backlog while the first is open
            await first.aclose()
            with anyio.fail_after(5):
                assert await second.receive() == format_ack(1)


async def test_no_connection_limit_below_one(tmp_path: Path) -> None:
    intake = _intake(tmp_path, max_connections=0)
    async with serving(intake), await anyio.connect_unix(intake.path) as stream:
        await stream.send(event_line(0))
        with anyio.fail_after(5):
            assert await stream.receive() == format_ack(1)


# -- sealing when idle ---------------------------------------------------------------------------


async def test_the_segment_is_sealed_after_a_quiet_spell_not_before(tmp_path: Path) -> None:
    intake = _intake(tmp_path, seal_after_idle=0.6)
    async with serving(intake), await anyio.connect_unix(intake.path) as stream:
        for i in range(4):  # a steady trickle, each line well inside the quiet spell
            await stream.send(event_line(i))
            assert await stream.receive() == format_ack(1)
            await anyio.sleep(0.25)
        [segment] = list_segments(tmp_path / "spool")
        assert not is_sealed(segment) and intake.writer.segment == segment
        await wait_until(lambda: is_sealed(segment), timeout=3)
        assert intake.writer.segment is None
        await stream.send(event_line(9))  # the next line opens a new segment
        assert await stream.receive() == format_ack(1)
        assert len(list_segments(tmp_path / "spool")) == 2


async def test_a_long_quiet_spell_is_checked_at_least_every_second(tmp_path: Path) -> None:
    intake = _intake(tmp_path, seal_after_idle=30.0)
    async with serving(intake):
        async with await anyio.connect_unix(intake.path) as stream:
            await stream.send(event_line(0))
            assert await stream.receive() == format_ack(1)
        [segment] = list_segments(tmp_path / "spool")
        intake._last_append -= 30.0  # as if the line had arrived 30 s ago
        with anyio.fail_after(1.6):
            await wait_until(lambda: is_sealed(segment))


# -- connections closed by the intake, and why the operator is told -------------------------------


async def test_an_idle_half_line_is_closed_and_logged_with_its_size(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    intake = _intake(tmp_path, idle_timeout=0.3)
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with serving(intake):
        for half in (b'{"half": ', b'{"h'):
            async with await anyio.connect_unix(intake.path) as stream:
                await stream.send(event_line(0) + half)
                assert await _receive_all(stream) == format_ack(1)
    records = _records(caplog, "connection idle in the middle of a line; closed")
    assert [r.levelno for r in records] == [logging.WARNING] * 2
    fields = [(r.idle_s, r.pending_bytes) for r in records]  # type: ignore[attr-defined]
    assert fields == [(0.3, 9), (0.3, 3)]
    assert intake.stats.idle_closed == 2


async def test_a_quiet_connection_between_lines_is_never_timed_out(tmp_path: Path) -> None:
    intake = _intake(tmp_path, idle_timeout=0.2)
    async with serving(intake), await anyio.connect_unix(intake.path) as stream:
        await stream.send(event_line(0))
        assert await stream.receive() == format_ack(1)
        await anyio.sleep(0.6)  # no line begun: an idle client may wait as long as it likes
        await stream.send(event_line(1))
        assert await stream.receive() == format_ack(1)
    assert intake.stats.idle_closed == 0


async def test_shedding_a_connection_logs_its_share_the_total_and_the_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    intake = _intake(tmp_path, max_buffered_bytes=1000)
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with serving(intake), await anyio.connect_unix(intake.path) as kept:
        await kept.send(b"a" * 600)
        await wait_until(lambda: intake.stats.buffered_bytes == 600)
        async with await anyio.connect_unix(intake.path) as exactly:
            await exactly.send(b"b" * 400)  # 1,000 held: at the limit, not past it
            await wait_until(lambda: intake.stats.buffered_bytes == 1000)
            await anyio.sleep(0.1)
            assert intake.stats.shed == 0
            async with await anyio.connect_unix(intake.path) as shed:
                await shed.send(event_line(0) + b"c" * 50)
                assert await _receive_all(shed) == format_ack(1)
            await wait_until(lambda: intake.stats.buffered_bytes == 1000)
    [record] = _records(
        caplog,
        "too many unfinished bytes held across connections; closing this one unacknowledged "
        "(its client spools the line itself)",
    )
    assert record.levelno == logging.WARNING
    fields = (record.held_bytes, record.total_bytes, record.limit_bytes)  # type: ignore[attr-defined]
    assert fields == (50, 1050, 1000)
    assert intake.stats.shed == 1


async def test_a_spool_write_the_disk_refuses_is_not_acknowledged_and_tears_no_later_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the file-size limit the write stops part-way (as on a full disk): no ACK, an error
    line, and the torn segment is sealed so the next lines go to a new one, whole."""
    intake = _intake(tmp_path)
    caplog.set_level(logging.INFO, logger=LOGGER)
    first, second = event_line(0), event_line(1)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    async with serving(intake):
        for _ in range(2):
            async with await anyio.connect_unix(intake.path) as stream:
                resource.setrlimit(resource.RLIMIT_FSIZE, (len(first) // 2, hard))
                try:
                    await stream.send(first)
                    assert await _receive_all(stream) == b""  # closed, unacknowledged
                finally:
                    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        async with await anyio.connect_unix(intake.path) as stream:
            await stream.send(second)
            assert await stream.receive() == format_ack(1)
        *torn, whole = list_segments(tmp_path / "spool")
        assert len(torn) == 2 and all(is_sealed(segment) for segment in torn)
        assert [segment.read_bytes() for segment in torn] == [first[: len(first) // 2]] * 2
        assert whole.read_bytes() == second
    records = _records(
        caplog, "cannot persist received lines; closing the connection unacknowledged"
    )
    assert [r.levelno for r in records] == [logging.ERROR] * 2
    assert all("File too large" in r.error for r in records)  # type: ignore[attr-defined]
    assert (intake.stats.write_errors, intake.stats.lines) == (2, 1)


async def test_an_oversized_line_that_cannot_be_dead_lettered_is_not_acknowledged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    intake = _intake(tmp_path, max_line_bytes=100)
    os.mkdir(tmp_path / "dead.ndjson")  # any write to the dead-letter file fails (EISDIR)
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with serving(intake):
        for _ in range(2):
            async with await anyio.connect_unix(intake.path) as stream:
                await stream.send(b"z" * 300 + b"\n" + event_line(0))
                assert await _receive_all(stream) == b""
    records = _records(
        caplog, "cannot dead-letter an oversized line; closing the connection unacknowledged"
    )
    assert [r.levelno for r in records] == [logging.ERROR] * 2
    assert all("Is a directory" in r.error for r in records)  # type: ignore[attr-defined]
    assert (intake.stats.write_errors, intake.stats.oversized, intake.stats.lines) == (2, 2, 0)
    assert list_segments(tmp_path / "spool") == []  # nothing after it was written either


async def test_a_fragment_that_cannot_be_dead_lettered_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    intake = _intake(tmp_path)
    os.mkdir(tmp_path / "dead.ndjson")
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with serving(intake):
        async with await anyio.connect_unix(intake.path) as stream:
            await stream.send(b'{"half')
            await wait_until(lambda: intake.stats.buffered_bytes == 6)
        await wait_until(lambda: intake.stats.open_connections == 0)
    [record] = _records(caplog, "cannot dead-letter a fragment")
    assert record.levelno == logging.ERROR
    assert "Is a directory" in record.error  # type: ignore[attr-defined]
    assert intake.stats.fragments == 1


@pytest.mark.parametrize("fsync", [True, False])
async def test_with_fsync_the_segment_is_synced_before_the_ack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    intake = _intake(tmp_path, fsync=fsync)
    async with serving(intake), await anyio.connect_unix(intake.path) as stream:
        await stream.send(event_line(0))
        assert await stream.receive() == format_ack(1)
        [segment] = list_segments(tmp_path / "spool")
        assert (segment.stat().st_ino in synced) is fsync


# -- accept under descriptor exhaustion ----------------------------------------------------------


@contextlib.contextmanager
def _no_spare_descriptors() -> Iterator[None]:
    """No descriptor free for this process (the test's and the intake's alike): the limit at the
    highest one open, and every gap below it filled."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(_open_fds()) + 1, hard))
    fillers = []
    try:
        with contextlib.suppress(OSError):
            while True:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_accept_without_descriptors_backs_off_doubling_to_a_cap_then_resets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every failed accept is logged with its error and the wait before the next try (50 ms,
    doubling, at most 1 s); it holds no connection slot, and a success starts the wait over."""
    intake = _intake(tmp_path, max_connections=3)
    caplog.set_level(logging.INFO, logger=LOGGER)
    message = "cannot accept a connection; backing off"
    clients = []

    def connect() -> socket.socket:
        """Queued in the backlog: the intake's loop does not run until the test awaits."""
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(intake.path))
        client.settimeout(5)
        clients.append(client)
        return client

    try:
        async with serving(intake):
            first = connect()
            with _no_spare_descriptors():
                await wait_until(lambda: len(_records(caplog, message)) >= 7, timeout=10)
            first.sendall(event_line(0))
            assert await anyio.to_thread.run_sync(first.recv, 64) == format_ack(1)
            failed = len(_records(caplog, message))
            second = connect()
            with _no_spare_descriptors():
                await wait_until(lambda: len(_records(caplog, message)) > failed, timeout=5)
            second.sendall(event_line(1))
            assert await anyio.to_thread.run_sync(second.recv, 64) == format_ack(1)
            for client in clients:
                client.close()
    finally:
        for client in clients:
            client.close()
    records = _records(caplog, message)
    waits = [r.retry_in_s for r in records]  # type: ignore[attr-defined]
    assert waits[:7] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert waits[failed] == 0.05  # the accept in between started the wait over
    assert all(r.levelno == logging.WARNING for r in records)
    assert all("Too many open files" in r.error for r in records)  # type: ignore[attr-defined]
    assert intake.stats.accept_errors == len(records)


# -- segments and accept errors -----------------------------------------------------------------


async def test_intake_segments_are_the_sidecars_own_and_roll_at_the_configured_size(
    tmp_path: Path,
) -> None:
    """The intake's segments are named as the sidecar's (an operator tells them from a step's
    own spool) and a new one begins once one reaches ``segment_bytes``: every line kept, in
    order."""
    lines = [event_line(i) for i in range(12)]
    intake = _intake(tmp_path, segment_bytes=3 * len(lines[0]))
    async with serving(intake), await anyio.connect_unix(intake.path) as stream:
        for line in lines:
            await stream.send(line)
            assert await stream.receive() == format_ack(1)
    segments = list_segments(tmp_path / "spool")
    assert len(segments) >= 4
    assert all(f"-sidecar-{os.getpid()}-" in s.name for s in segments)
    assert b"".join(s.read_bytes() for s in segments) == b"".join(lines)


class _FailingListener:
    """A listener whose accept fails as anyio reports an OS error of the listening socket."""

    def __init__(self, cause: BaseException | None) -> None:
        self.cause = cause
        self.accepts = 0

    async def accept(self) -> None:
        self.accepts += 1
        raise anyio.BrokenResourceError from self.cause

    async def __aenter__(self) -> _FailingListener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize(
    "cause", [OSError(errno.EBADF, "Bad file descriptor"), OSError(errno.EINVAL, "Invalid"), None]
)
async def test_an_accept_error_that_is_no_lack_of_resources_stops_the_intake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cause: BaseException | None
) -> None:
    """Only a lack of descriptors, buffers or memory (or an aborted connection) is waited out:
    any other failure of accept ends ``serve`` with it at once, never retried in a loop."""
    listener = _FailingListener(cause)

    async def from_socket(sock: socket.socket) -> _FailingListener:
        sock.close()
        return listener

    monkeypatch.setattr(anyio.abc.SocketListener, "from_socket", from_socket)
    intake = _intake(tmp_path)
    with pytest.raises(BaseException) as raised:
        with anyio.fail_after(5):
            await intake.serve()
    errors = (
        raised.value.exceptions if isinstance(raised.value, BaseExceptionGroup) else [raised.value]
    )
    assert [type(e) for e in errors] == [anyio.BrokenResourceError]
    assert errors[0].__cause__ is cause
    assert (listener.accepts, intake.stats.accept_errors) == (1, 0)
    assert not intake.path.exists()


async def test_an_intake_whose_first_write_failed_still_seals_when_idle_and_serves_on(
    tmp_path: Path,
) -> None:
    """A first write the disk refuses leaves a torn segment and no append time; the idle check
    that follows seals it (it has had no line for longer than any quiet spell) instead of
    failing the intake, and the next client is served."""
    intake = _intake(tmp_path, seal_after_idle=0.05)
    line = event_line(0)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    async with serving(intake):
        async with await anyio.connect_unix(intake.path) as stream:
            resource.setrlimit(resource.RLIMIT_FSIZE, (len(line) // 2, hard))
            try:
                await stream.send(line)
                assert await _receive_all(stream) == b""
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        await wait_until(lambda: intake.writer.segment is None, timeout=5)
        async with await anyio.connect_unix(intake.path) as stream:
            await stream.send(line)
            assert await stream.receive() == format_ack(1)
    assert intake.stats.write_errors == 1
