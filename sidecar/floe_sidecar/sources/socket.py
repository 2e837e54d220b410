"""The socket intake: NDJSON over a Unix stream socket, persisted to the spool before the ACK.

Protocol (see :mod:`floe_core.transport`): the client sends complete event lines; after the
sidecar has written a run of them to its own spool segment it answers ``ACK <n>\\n`` for those
``n`` lines of that connection (each ACK covers the next ``n`` lines, in order). What the client
never got an ACK for is the client's to write to the spool itself, so a crash between receipt and
persistence loses nothing (at worst the last unacknowledged lines arrive twice, same event ids).

Lines are persisted as received, unparsed (a line is data, never code): the validator reports
bad ones from the spool like any other. A line over the size limit is not written to the spool:
its head and length go to the dead-letter file and it is acknowledged like the others (it was
persisted, in the dead-letter), and the connection goes on. A connection that ends mid-line has
that fragment dead-lettered (it was never acknowledged).

The socket is created owner-only (0600) under a restrictive umask, so it is never reachable by
others even for a moment; with ``group`` it is 0660 and owned by that group.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import logging
import os
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc

from floe_core.errors import SocketInStateError
from floe_core.spool import SpoolWriter
from floe_core.transport import MAX_LINE_BYTES, format_ack
from floe_sidecar.engine.undeliverable import Undeliverable
from floe_sidecar.engine.wakeup import Wakeup
from floe_sidecar.sources.framing import LineFramer, LineHead

__all__ = ["IntakeStats", "SocketInStateError", "SocketIntake", "bind_unix_socket"]

log = logging.getLogger("floe_sidecar.intake")

RECEIVE_BYTES = 64 * 1024
#: Connections served at once; more wait in the listen backlog (the client times out and writes
#: to the spool itself), so idle connections can never take every file descriptor.
MAX_CONNECTIONS = 256
#: Bytes of unfinished lines held across all connections. A connection whose partial line would
#: take the total past it is closed unacknowledged (its client spools the line itself), so
#: memory stays bounded whatever the number of connections.
MAX_BUFFERED_BYTES = 16 * 1024 * 1024
#: A connection in the middle of a line that sends nothing for this long is closed.
IDLE_TIMEOUT_S = 30.0
#: How much of an unfinished line a closed connection leaves in the dead-letter file (it was
#: never acknowledged: its client still has it; the record only says that it happened).
FRAGMENT_HEAD_BYTES = 4 * 1024
#: Back-off when accept fails for want of descriptors or memory (EMFILE, ENFILE, ...).
ACCEPT_BACKOFF_S = (0.05, 1.0)
_ACCEPT_RESOURCE_ERRORS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED}
)


@dataclass
class IntakeStats:
    connections: int = 0  # accepted, this process
    open_connections: int = 0
    lines: int = 0  # persisted to the spool
    oversized: int = 0
    fragments: int = 0
    write_errors: int = 0
    accept_errors: int = 0  # accept failed for want of resources (backed off, went on)
    shed: int = 0  # connections closed for holding too many unfinished bytes
    idle_closed: int = 0  # connections closed mid-line after the idle timeout
    buffered_bytes: int = 0  # unfinished lines held now, all connections


def bind_unix_socket(path: Path, *, group: str | None = None) -> socket.socket:
    """A bound, listening socket at ``path``, owner-only (or group-shared)."""
    gid = None
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise SocketInStateError(f"--socket-group {group!r}: no such group") from None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise SocketInStateError(f"{path} exists and is not a socket; not replacing it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            os.unlink(path)  # a stale socket left by a sidecar that died
        else:
            raise SocketInStateError(f"{path}: another process is listening on this socket")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others connect
        try:
            sock.bind(str(path))
        finally:
            os.umask(old_umask)
        if gid is not None:
            os.chown(path, -1, gid)
            os.chmod(path, 0o660)
        else:
            os.chmod(path, 0o600)
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class SocketIntake:
    def __init__(
        self,
        path: Path,
        spool_dir: Path,
        undeliverable: Undeliverable,
        wakeup: Wakeup,
        *,
        group: str | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
        fsync: bool = False,
        segment_bytes: int = 16 * 1024 * 1024,
        seal_after_idle: float = 2.0,
        max_connections: int = MAX_CONNECTIONS,
        max_buffered_bytes: int = MAX_BUFFERED_BYTES,
        idle_timeout: float = IDLE_TIMEOUT_S,
    ) -> None:
        self.path = path
        self.undeliverable = undeliverable
        self.wakeup = wakeup
        self.group = group
        self.max_line_bytes = max_line_bytes
        self.fsync = fsync
        self.seal_after_idle = seal_after_idle
        self.max_buffered_bytes = max_buffered_bytes
        self.idle_timeout = idle_timeout
        self._slots = anyio.Semaphore(max(1, max_connections))
        self.writer = SpoolWriter(spool_dir, prefix="sidecar", max_segment_bytes=segment_bytes)
        self.stats = IntakeStats()
        self._last_append = 0.0
        self._inode: int | None = None
        self._sock: socket.socket | None = None

    def bind(self) -> None:
        """Create the socket now, so a taken path fails the start, plainly."""
        if self._sock is None:
            self._sock = bind_unix_socket(self.path, group=self.group)
            self._inode = os.stat(self.path).st_ino

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept connections until cancelled; then seal the segment and remove the socket."""
        self.bind()
        assert self._sock is not None
        sock, self._sock = self._sock, None
        listener = await anyio.abc.SocketListener.from_socket(sock)
        log.info("listening", extra={"socket": str(self.path)})
        task_status.started()
        try:
            async with listener, anyio.create_task_group() as tg:
                tg.start_soon(self._seal_when_idle)
                backoff = ACCEPT_BACKOFF_S[0]
                while True:
                    await self._slots.acquire()
                    try:
                        stream = await listener.accept()
                    except anyio.BrokenResourceError as exc:
                        self._slots.release()
                        cause = exc.__cause__
                        if not isinstance(cause, OSError) or cause.errno not in (
                            _ACCEPT_RESOURCE_ERRORS
                        ):
                            raise
                        self.stats.accept_errors += 1
                        log.warning(
                            "cannot accept a connection; backing off",
                            extra={"error": str(cause), "retry_in_s": backoff},
                        )
                        await anyio.sleep(backoff)
                        backoff = min(backoff * 2, ACCEPT_BACKOFF_S[1])
                        continue
                    except BaseException:
                        self._slots.release()
                        raise
                    backoff = ACCEPT_BACKOFF_S[0]
                    tg.start_soon(self._serve_connection, stream)
        finally:
            self.writer.close()
            self._remove_socket()

    def _remove_socket(self) -> None:
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)

    async def _seal_when_idle(self) -> None:
        """Close the intake segment after a quiet spell, so it can be delivered and removed."""
        while True:
            await anyio.sleep(min(1.0, self.seal_after_idle))
            if (
                self.writer.segment is not None
                and time.monotonic() - self._last_append >= self.seal_after_idle
            ):
                self.writer.close()
                self.writer.segment = None

    async def _serve_connection(self, stream: anyio.abc.SocketStream) -> None:
        stats = self.stats
        stats.connections += 1
        stats.open_connections += 1
        framer = LineFramer(self.max_line_bytes)
        held = 0  # this connection's share of stats.buffered_bytes
        try:
            async with stream:
                while True:
                    try:
                        with anyio.fail_after(self.idle_timeout if framer.pending else None):
                            data = await stream.receive(RECEIVE_BYTES)
                    except TimeoutError:
                        stats.idle_closed += 1
                        log.warning(
                            "connection idle in the middle of a line; closed",
                            extra={"idle_s": self.idle_timeout, "pending_bytes": framer.pending},
                        )
                        break
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        break
                    framed = framer.feed(data)
                    stats.buffered_bytes += framer.held - held
                    held = framer.held
                    if framed.count:
                        if not await self._persist(framed.lines, framed.oversized):
                            return  # not acknowledged: the client keeps them and spools them
                        try:
                            await stream.send(format_ack(framed.count))
                        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                            break  # persisted anyway; the client may send them again (same ids)
                    if stats.buffered_bytes > self.max_buffered_bytes and held:
                        stats.shed += 1
                        log.warning(
                            "too many unfinished bytes held across connections; closing this "
                            "one unacknowledged (its client spools the line itself)",
                            extra={
                                "held_bytes": held,
                                "total_bytes": stats.buffered_bytes,
                                "limit_bytes": self.max_buffered_bytes,
                            },
                        )
                        break
                unfinished = framer.unfinished()
                if unfinished is not None:
                    stats.fragments += 1
                    head = LineHead(unfinished.length, unfinished.head[:FRAGMENT_HEAD_BYTES])
                    await self._dead_letter_quietly("fragment", "connection closed mid-line", head)
        finally:
            stats.buffered_bytes -= held
            stats.open_connections -= 1
            self._slots.release()

    async def _persist(self, lines: list[bytes], oversized: list[LineHead]) -> bool:
        for line in oversized:
            self.stats.oversized += 1
            try:
                await self._dead_letter(
                    "oversized",
                    f"line of {line.length} bytes exceeds the {self.max_line_bytes}-byte limit; "
                    f"only its first {len(line.head)} bytes are kept",
                    line,
                )
            except OSError as exc:  # acknowledged only once persisted: here it is not
                self.stats.write_errors += 1
                log.error(
                    "cannot dead-letter an oversized line; closing the connection unacknowledged",
                    extra={"error": str(exc)},
                )
                return False
        if lines:
            try:
                self.writer.append(b"\n".join(lines) + b"\n")
                if self.fsync:
                    await anyio.to_thread.run_sync(self.writer.fsync)
            except OSError as exc:
                self.stats.write_errors += 1
                log.error(
                    "cannot persist received lines; closing the connection unacknowledged",
                    extra={"error": str(exc)},
                )
                self.writer.close()
                return False
            self._last_append = time.monotonic()
            self.stats.lines += len(lines)
            self.wakeup.notify()
        return True

    async def _dead_letter(self, kind: str, reason: str, line: LineHead) -> None:
        await anyio.to_thread.run_sync(
            self.undeliverable.intake, kind, reason, line.head, line.length
        )

    async def _dead_letter_quietly(self, kind: str, reason: str, line: LineHead) -> None:
        try:
            await self._dead_letter(kind, reason, line)
        except OSError as exc:
            log.error("cannot dead-letter a fragment", extra={"error": str(exc)})
