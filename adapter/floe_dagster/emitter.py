"""Event emission that never blocks and never breaks the pipeline.

Two paths, chosen per event:

- **Socket** (``FLOE_SOCKET`` set and a sidecar listening): each line is written with a
  non-blocking ``send``; the sidecar answers ``ACK <n>\\n`` once it has persisted ``n`` more lines
  of this connection. Lines stay in an in-memory "unacknowledged" queue until acked. At
  :meth:`EventEmitter.close` the emitter waits a short, bounded time for the remaining acks.
- **Spool** (no socket, or the socket failed, or lines never acknowledged): complete NDJSON lines
  appended to this emitter's own segment in ``FLOE_SPOOL_DIR`` (owner-only).

Any socket failure (refused, reset, sidecar stops reading, protocol error) moves every
unacknowledged line to the spool and keeps going on the spool: delivery is at least once (a line
the sidecar persisted but could not ack yet may also reach the spool; events carry stable ids).
If the spool cannot be written either (disk full, permissions), the event is dropped and
counted, ONE warning is logged, and dbt carries on; the step reports the count at its end.

Not thread-safe: one emitter per step, used from the thread that reads dbt's output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from floe_core.events import Event, encode_event
from floe_core.layout import DEFAULT_SPOOL_DIR
from floe_core.spool import SpoolWriter
from floe_core.transport import (
    ACK_PREFIX,
    MAX_LINE_BYTES,
    SOCKET_ENV,
    SPOOL_ENV,
)

__all__ = [
    "DEFAULT_ACK_TIMEOUT_S",
    "EmitStats",
    "EventEmitter",
    "EventSink",
    "emitter_from_env",
    "spool_dir_from_env",
]

log = logging.getLogger("floe_dagster.emitter")

DEFAULT_ACK_TIMEOUT_S = 2.0
# Bytes the sidecar may leave unread or unacknowledged before the socket counts as stalled.
DEFAULT_MAX_UNACKED_BYTES = 16 * 1024 * 1024
_MAX_ACK_LINE = 64
_ACK_READ_EVERY = 16
_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)  # a closed peer is an error, not a signal


@dataclass(frozen=True)
class EmitStats:
    """What happened to the events of one step."""

    emitted: int = 0  # events handed to the emitter
    acked: int = 0  # persisted by the sidecar (acknowledged on the socket)
    spooled: int = 0  # appended to the spool by this emitter
    dropped: int = 0  # lost: neither the socket nor the spool would take them
    socket_error: str | None = None
    spool_error: str | None = None


class EventSink(Protocol):
    """What the step writes events to."""

    def emit(self, event: Event) -> None: ...

    def close(self) -> EmitStats: ...


class EventEmitter:
    """Socket when a sidecar listens, spool otherwise; never raises from :meth:`emit`."""

    def __init__(
        self,
        spool_dir: Path | str,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S,
        max_unacked_bytes: int = DEFAULT_MAX_UNACKED_BYTES,
        spool_prefix: str = "adapter",
    ) -> None:
        self.spool_dir = Path(spool_dir)
        self.socket_path = os.fspath(socket_path) if socket_path else None
        self.ack_timeout_s = ack_timeout_s
        self.max_unacked_bytes = max_unacked_bytes
        self._spool_prefix = spool_prefix
        self._spool: SpoolWriter | None = None
        self._sock: socket.socket | None = None
        self._unacked: deque[bytes] = deque()  # sent or queued, not yet acknowledged
        self._unacked_bytes = 0
        self._outbuf = bytearray()  # the not-yet-sent tail of the unacknowledged lines
        self._inbuf = bytearray()
        self._emitted = self._acked = self._spooled = self._dropped = 0
        self._socket_error: str | None = None
        self._spool_error: str | None = None
        self._closed = False
        if self.socket_path:
            self._connect(self.socket_path)

    # --- public -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def emit(self, event: Event) -> None:
        try:
            line = encode_event(event)
        except Exception as exc:  # an unencodable event is a bug; it must not stop dbt
            self._drop(1, f"could not encode {type(event).__name__}: {exc}")
            return
        self.emit_line(line)

    def emit_line(self, line: bytes) -> None:
        """Send one complete NDJSON line (newline included)."""
        self._emitted += 1
        if self._closed:
            self._drop(1, "emitter already closed")
            return
        if self._sock is not None and len(line) <= MAX_LINE_BYTES:
            self._unacked.append(line)
            self._unacked_bytes += len(line)
            self._pump(line)
            return
        # No sidecar, or a line the socket protocol refuses (the sidecar dead-letters it
        # from the spool, with the reason, instead of losing it).
        self._to_spool(line, 1)

    def stats(self) -> EmitStats:
        return EmitStats(
            emitted=self._emitted,
            acked=self._acked,
            spooled=self._spooled,
            dropped=self._dropped,
            socket_error=self._socket_error,
            spool_error=self._spool_error,
        )

    def close(self) -> EmitStats:
        """Wait (bounded) for the sidecar's acks, spool what it did not ack, seal the segment."""
        if not self._closed:
            self._closed = True
            if self._sock is not None:
                self._drain(time.monotonic() + self.ack_timeout_s)
                if self._unacked:
                    self._fail_socket(
                        f"{len(self._unacked)} event(s) not acknowledged within "
                        f"{self.ack_timeout_s:g}s; written to the spool instead",
                        warn=False,
                    )
                else:
                    self._close_socket()
            if self._spool is not None:
                with contextlib.suppress(OSError):
                    self._spool.close()
                self._spool = None
        return self.stats()

    def __enter__(self) -> EventEmitter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- socket -------------------------------------------------------------------------------

    def _connect(self, path: str) -> None:
        sock = None
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect(path)
        except OSError as exc:
            if sock is not None:
                sock.close()
            # Nothing listening is the normal standalone-with-spool case: no warning.
            self._socket_error = f"no sidecar at {path}: {exc.strerror or exc}"
            log.info("%s; events go to the spool %s", self._socket_error, self.spool_dir)
            return
        self._sock = sock

    def _pump(self, line: bytes = b"") -> None:
        """Send ``line`` (after anything still queued) as far as the socket takes it now, and
        collect acks; never waits."""
        sock = self._sock
        if sock is None:
            return
        problem = None
        # Acks are read every few lines (and whenever sending is backed up): often enough that
        # the sidecar never blocks on them, rarely enough to spare a syscall per event. Acks
        # come first: a sidecar that acked and then hung up still gets those lines counted.
        if self._outbuf or not self._emitted % _ACK_READ_EVERY or not line:
            problem = self._read_acks(sock)
        if problem is None:
            try:
                if line and not self._outbuf:
                    sent = sock.send(line, _SEND_FLAGS)
                    if sent < len(line):
                        self._outbuf += memoryview(line)[sent:]
                else:
                    self._outbuf += line
                    while self._outbuf:
                        sent = sock.send(self._outbuf, _SEND_FLAGS)
                        del self._outbuf[:sent]
            except BlockingIOError:
                if line and not self._outbuf:  # the first send took nothing
                    self._outbuf += line
            except OSError as exc:
                problem = f"sidecar socket write failed: {exc}"
                self._read_acks(sock)  # acks that arrived before the failure still count
        if problem is None and self._unacked_bytes > self.max_unacked_bytes:
            problem = f"sidecar has not acknowledged {self._unacked_bytes} bytes"
        if problem is not None:
            self._fail_socket(problem)

    def _read_acks(self, sock: socket.socket) -> str | None:
        """Consume the acks available now; returns what went wrong, if anything."""
        while True:
            try:
                chunk = sock.recv(4096)
            except BlockingIOError:
                return None
            except OSError as exc:
                return f"sidecar socket read failed: {exc}"
            if not chunk:
                return "sidecar closed the connection"
            self._inbuf += chunk
            problem = self._parse_acks()
            if problem is not None:
                return problem

    def _parse_acks(self) -> str | None:
        while True:
            end = self._inbuf.find(b"\n")
            if end < 0:
                if len(self._inbuf) > _MAX_ACK_LINE:
                    return "sidecar sent an over-long line instead of an ACK"
                return None
            raw = bytes(self._inbuf[:end])
            del self._inbuf[: end + 1]
            count = _ack_count(raw)
            if count is None or count > len(self._unacked):
                return f"unexpected reply from the sidecar: {raw[:_MAX_ACK_LINE]!r}"
            for _ in range(count):
                self._unacked_bytes -= len(self._unacked.popleft())
            self._acked += count

    def _drain(self, deadline: float) -> None:
        """Flush and collect acks until all are in or ``deadline`` passes."""
        while self._sock is not None and self._unacked:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            events = select.POLLIN | (select.POLLOUT if self._outbuf else 0)
            poller = select.poll()
            poller.register(self._sock, events)
            try:
                ready = poller.poll(remaining * 1000)
            except InterruptedError:
                continue
            if ready:
                self._pump()

    def _fail_socket(self, reason: str, *, warn: bool = True) -> None:
        """Give up on the socket: every unacknowledged line goes to the spool."""
        if warn:
            log.warning("%s; events go to the spool %s", reason, self.spool_dir)
        self._socket_error = reason
        self._close_socket()
        lines = list(self._unacked)
        self._unacked.clear()
        self._unacked_bytes = 0
        self._outbuf.clear()
        if lines:
            self._to_spool(b"".join(lines), len(lines))

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    # --- spool --------------------------------------------------------------------------------

    def _to_spool(self, data: bytes, count: int) -> None:
        """Append ``count`` complete lines (``data``) in one write."""
        try:
            if self._spool is None:
                self._spool = SpoolWriter(self.spool_dir, prefix=self._spool_prefix)
            self._spool.append(data)
        except OSError as exc:
            # Seal the segment: a half-written line must not glue onto the next one.
            if self._spool is not None:
                with contextlib.suppress(OSError):
                    self._spool.close()
                self._spool = None
            self._drop(count, f"cannot write the spool {self.spool_dir}: {exc}")
            return
        self._spooled += count

    def _drop(self, count: int, reason: str) -> None:
        if self._spool_error is None:  # one warning per step, however many events follow
            log.warning("%s; dropping events (dbt keeps running)", reason)
            self._spool_error = reason
        self._dropped += count


def _ack_count(raw: bytes) -> int | None:
    if not raw.startswith(ACK_PREFIX):
        return None
    digits = raw[len(ACK_PREFIX) :].strip()
    if not digits.isdigit():
        return None
    return int(digits)


def spool_dir_from_env(environ: Mapping[str, str], default: Path | str) -> Path:
    """``FLOE_SPOOL_DIR`` if set, else ``default``."""
    value = environ.get(SPOOL_ENV)
    return Path(value) if value else Path(default)


def emitter_from_env(
    environ: Mapping[str, str] | None = None,
    *,
    default_spool_dir: Path | str = DEFAULT_SPOOL_DIR,
    ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S,
) -> EventEmitter:
    """An emitter for ``FLOE_SOCKET`` / ``FLOE_SPOOL_DIR`` as set in ``environ``."""
    env = os.environ if environ is None else environ
    return EventEmitter(
        spool_dir_from_env(env, default_spool_dir),
        env.get(SOCKET_ENV) or None,
        ack_timeout_s=ack_timeout_s,
    )
