"""One daemon thread per sink, where its blocking work runs (reading, translating, delivering).

Why not ``anyio.to_thread``: its threads are not daemons, so a ``deliver`` that hangs forever
would keep the process from exiting after shutdown, and an abandoned call would free its limiter
slot while still running, letting a second ``deliver`` of the same sink start beside it. Here a
sink's calls run strictly one after another on its own thread; awaiting a call can be cancelled
(the call is then abandoned and the thread stays busy until it returns), and a hung call never
holds up another sink or the process exit.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

__all__ = ["ThreadWorker"]

T = TypeVar("T")


class _Call:
    __slots__ = ("done", "error", "fn", "result", "token")

    def __init__(self, fn: Callable[[], Any], token: anyio.lowlevel.EventLoopToken) -> None:
        self.fn = fn
        self.token = token
        self.done = anyio.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class ThreadWorker:
    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=f"floe-{name}", daemon=True)
        self._started = False
        self._idle = threading.Event()
        self._idle.set()
        self._busy_since: float | None = None
        self._lock = anyio.Lock()

    @property
    def busy_since(self) -> float | None:
        """Monotonic time the current call started, None when idle."""
        return self._busy_since

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on this worker's thread; calls never overlap, even abandoned ones."""
        async with self._lock:
            while not self._idle.is_set():  # an abandoned call still runs: wait for it
                await anyio.sleep(0.05)
            if not self._started:
                self._thread.start()
                self._started = True
            call = _Call(fn, anyio.lowlevel.current_token())
            self._idle.clear()
            self._queue.put(call)
            await call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def stop(self) -> None:
        """Let the thread end after its current call (it is a daemon: exit never waits)."""
        if self._started:
            self._queue.put(None)

    def _loop(self) -> None:
        while (call := self._queue.get()) is not None:
            self._busy_since = time.monotonic()
            try:
                call.result = call.fn()
            except BaseException as exc:  # handed to the awaiting task
                call.error = exc
            self._busy_since = None
            self._idle.set()
            # If the loop is gone (shutdown), nobody is waiting for the result.
            with contextlib.suppress(Exception):
                anyio.from_thread.run_sync(call.done.set, token=call.token)
