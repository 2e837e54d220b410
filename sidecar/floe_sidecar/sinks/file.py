"""A sink that appends each event, as NDJSON, to a file: the raw event stream, for debugging,
tests, and as a durable local copy.

``deliver`` appends the whole batch with :func:`floe_core.fsutil.append_lines` and (by default)
fsyncs before returning, so the sidecar's cursor never moves past events that a machine crash
could still take back; a torn last line left by a crash is closed off first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from floe_core.events import Event, encode_event
from floe_core.fsutil import append_lines
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

    def translate(self, event: Event) -> Sequence[bytes]:
        return (encode_event(event),)

    def deliver(self, batch: Sequence[bytes]) -> Sequence[Rejection]:
        append_lines(self.path, b"".join(batch), durable=self.fsync)
        return ()

    def close(self) -> None:
        return None
