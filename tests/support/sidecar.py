"""Helpers for the sidecar tests: spools of test events, a real sidecar process, a socket client
speaking the ACK protocol, receivers.

Imported by the tests only (never by the sidecar process itself; its plugin sinks live in
:mod:`support.plugins`). The events come from :mod:`support.data`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from floe_core.spool import SpoolWriter
from floe_core.transport import ACK_PREFIX
from support.data import event_id_of, event_line
from support.environment import REPO_ROOT, TESTS_DIR
from support.loopback import wait_for

SIDECAR = REPO_ROOT / ".venv" / "bin" / "floe-sidecar"


def write_spool(spool: Path, count: int, *, start: int = 0, per_write: int = 100) -> set[str]:
    """Write events ``start..start+count`` with a SpoolWriter (the adapter's path); their ids."""
    with SpoolWriter(spool, prefix="adapter") as writer:
        for first in range(start, start + count, per_write):
            last = min(first + per_write, start + count)
            writer.append(b"".join(event_line(i) for i in range(first, last)))
    return {event_id_of(i) for i in range(start, start + count)}


def ids_in_ndjson(path: Path) -> list[str]:
    """Event ids of every line of a file sink's output, in order (duplicates kept)."""
    ids, torn = ids_and_torn_lines(path)
    assert not torn, f"{path}: {torn} lines that are not JSON"
    return ids


def ids_and_torn_lines(path: Path) -> tuple[list[str], int]:
    """:func:`ids_in_ndjson`, and how many lines are torn: a ``kill -9`` that lands inside the
    file sink's write cuts its last line short (the next append closes it off with a newline;
    the batch was not behind the cursor, so its events are delivered again)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    ids: list[str] = []
    torn = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            ids.append(json.loads(line)["event_id"])
        except json.JSONDecodeError:
            torn += 1
    return ids, torn


def sidecar_cmd(*args: str | Path) -> list[str]:
    return [str(SIDECAR), *(str(a) for a in args)]


def sidecar_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("FLOE_", "OTEL_", "OPENLINEAGE"))
    }
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    env["OTEL_SDK_DISABLED"] = "true"
    env["OPENLINEAGE_DISABLED"] = "true"
    env.update(extra)
    return env


class SidecarProcess:
    """A real ``floe-sidecar`` process; its output goes to files (a full pipe would block it)."""

    def __init__(self, log_dir: Path, *args: str | Path, **env: str) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = log_dir / f"sidecar-{time.monotonic_ns()}.out"
        self.stderr_path = self.stdout_path.with_suffix(".err")
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                sidecar_cmd(*args), env=sidecar_env(**env), stdout=out, stderr=err, cwd=TESTS_DIR
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def logs(self) -> list[dict[str, object]]:
        out = []
        for line in self.stderr().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def wait_listening(self, timeout: float = 30) -> None:
        """Until the socket intake is up (the signal handlers are installed by then)."""
        wait_for(
            lambda: '"message":"listening"' in self.stderr() or not self.alive(), timeout, "listen"
        )
        assert self.alive(), self.stderr()

    def terminate(self, timeout: float = 30) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc.poll() is None


def run_sidecar(
    *args: str | Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        sidecar_cmd(*args),
        env=sidecar_env(**env),
        capture_output=True,
        timeout=timeout,
        cwd=str(TESTS_DIR),
        check=False,
    )


class AckingClient:
    """The socket side of the adapter's contract: send lines, count ACKs, spool the rest.

    Lines stay "unacknowledged" until an ``ACK n`` covers them; when the connection fails, every
    unacknowledged line is written to the spool (possibly duplicating lines the sidecar persisted
    but could not acknowledge).
    """

    def __init__(self, socket_path: Path, spool: Path) -> None:
        self.socket_path = socket_path
        self.spool = spool
        self.sock: socket.socket | None = None
        self.unacked: deque[bytes] = deque()
        self.acked = 0
        self.spooled = 0
        self._inbuf = b""

    def connect(self) -> bool:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.socket_path))
        except OSError:
            sock.close()
            return False
        self.sock = sock
        return True

    def send(self, lines: list[bytes]) -> None:
        self.unacked.extend(lines)
        if self.sock is None:
            self.fail()
            return
        try:
            self.sock.settimeout(10)  # read_acks leaves it non-blocking
            self.sock.sendall(b"".join(lines))
        except OSError:
            self.fail()
            return
        self.read_acks(0)

    def read_acks(self, timeout: float) -> None:
        if self.sock is None:
            return
        self.sock.settimeout(timeout if timeout > 0 else 0.0)
        try:
            while True:
                try:
                    data = self.sock.recv(4096)
                except (BlockingIOError, TimeoutError):
                    return
                if not data:
                    self.fail()
                    return
                self._inbuf += data
                while b"\n" in self._inbuf:
                    raw, self._inbuf = self._inbuf.split(b"\n", 1)
                    assert raw.startswith(ACK_PREFIX), raw
                    for _ in range(int(raw[len(ACK_PREFIX) :])):
                        self.unacked.popleft()
                        self.acked += 1
                if timeout <= 0:
                    continue
                if not self.unacked:
                    return
        except OSError:
            self.fail()

    def wait_all_acked(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.unacked and self.sock is not None and time.monotonic() < deadline:
            self.read_acks(0.05)

    def fail(self) -> None:
        """The sidecar is gone: everything unacknowledged goes to the spool."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.unacked:
            with SpoolWriter(self.spool, prefix="client") as writer:
                writer.append(b"".join(self.unacked))
            self.spooled += len(self.unacked)
            self.unacked.clear()
        self._inbuf = b""

    def close(self) -> None:
        self.fail()


class Receiver:
    """A loopback HTTP endpoint that records posted event ids; can be down, failing or hung."""

    def __init__(self, port: int = 0) -> None:
        self.mode = "ok"  # ok | fail (503) | hang
        self.ids: list[str] = []
        self.posts = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.posts += 1
                if receiver.mode == "hang":
                    receiver.release.wait()
                if receiver.mode == "fail":
                    self.send_response(503)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.ids.extend(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
