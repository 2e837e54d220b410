"""Child processes that `floe run` and `floe dev` start, stop and (for the sidecar) restart.

Children run in their own session, so a Ctrl-C in the terminal reaches only floe, which then stops
them in a chosen order: Dagster first (its last events still reach the sidecar), the sidecar last.
They are started from an argument list, never through a shell.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["Backoff", "Child", "RestartingChild"]


class Child:
    """One child process: started with an argument list, stopped with a signal, then killed."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        output: IO[bytes] | None = None
        if self.log_path is not None:
            # Owner-only: a child's log can hold SQL and connection details.
            self.log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._log = output = os.fdopen(fd, "ab")
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            start_new_session=True,
        )

    def poll(self) -> int | None:
        """The exit code once the child has ended, else None."""
        return self.process.poll() if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send(self, signum: int) -> None:
        if self.running():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    def stop(self, *, signum: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Ask the child to stop; kill its whole session after ``timeout`` seconds."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.send(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        code = self.process.wait()
        # Anything the child started and left behind in its session is ours to end too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGTERM)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def kill(self) -> None:
        """SIGKILL the child and everything it started in its session."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@dataclass
class Backoff:
    """Restart delays: ``initial`` doubling up to ``maximum``; reset after a long enough run."""

    initial: float = 0.5
    maximum: float = 30.0
    healthy_after: float = 60.0  # a child that ran this long counts as recovered
    _next: float = field(default=0.0, init=False)

    def delay(self, ran_for: float) -> float:
        if ran_for >= self.healthy_after or self._next == 0.0:
            self._next = self.initial
        else:
            self._next = min(self._next * 2, self.maximum)
        return self._next


class RestartingChild:
    """A child that is started again, with backoff, whenever it dies: the sidecar under `floe dev`.

    Call :meth:`tick` regularly; it never blocks. A crash is reported through ``on_event`` and
    never propagates: what the child does is optional to the processes next to it.
    """

    def __init__(
        self,
        child: Child,
        *,
        backoff: Backoff | None = None,
        on_event: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.child = child
        self.backoff = backoff or Backoff()
        self.on_event = on_event
        self.clock = clock
        self.restarts = 0
        self._started_at = 0.0
        self._restart_at: float | None = None

    def start(self) -> None:
        self._started_at = self.clock()
        self.child.start()

    def tick(self) -> None:
        now = self.clock()
        if self._restart_at is not None:
            if now >= self._restart_at:
                self._restart_at = None
                self.restarts += 1
                self._say(f"restarting {self.child.name} (restart {self.restarts})")
                try:
                    self.start()
                except OSError as exc:
                    self._schedule(now, f"{self.child.name} could not start: {exc}")
            return
        code = self.child.poll()
        if code is not None:
            self._schedule(now, f"{self.child.name} exited with code {code}")

    def stop(self, timeout: float = 10.0) -> int | None:
        self._restart_at = None
        return self.child.stop(timeout=timeout)

    def _schedule(self, now: float, what: str) -> None:
        delay = self.backoff.delay(now - self._started_at)
        self._restart_at = now + delay
        self._say(f"{what}; restarting in {delay:.1f}s")

    def _say(self, message: str) -> None:
        if self.on_event is not None:
            self.on_event(message)
