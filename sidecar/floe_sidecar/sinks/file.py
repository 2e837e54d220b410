"""A sink that appends each event, as NDJSON, to a file: the raw event stream, for debugging,
tests, and as a durable local copy.

``deliver`` writes the whole batch with one ``write`` and (by default) fsyncs before returning, so
the sidecar's cursor never moves past events that a machine crash could still take back.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from floe_core.events import Event, encode_event
from floe_sidecar.sinks.base import Rejection

__all__ = ["FileSink"]


class FileSink:
    def __init__(
        self,
        path: Path | str,
        name: str = "file",
        *,
        max_batch: int = 1000,
        fsync: bool = True,
    ) -> None:
        self.name = name
        self.path = Path(path)
        self.max_batch = max_batch
        self.fsync = fsync
        self._fd: int | None = None
        self._regular = True

    def translate(self, event: Event) -> Sequence[bytes]:
        return (encode_event(event),)

    def deliver(self, batch: Sequence[bytes]) -> Sequence[Rejection]:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)  # /dev/null cannot fsync
        view = memoryview(b"".join(batch))
        while view:
            view = view[os.write(self._fd, view) :]
        if self.fsync and self._regular:
            os.fsync(self._fd)
        return ()

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
