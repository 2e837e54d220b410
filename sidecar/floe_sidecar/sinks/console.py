"""A sink that prints each event as one NDJSON line on stdout: for debugging and demos."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import BinaryIO

from floe_core.events import Event, encode_event
from floe_sidecar.sinks.base import Rejection

__all__ = ["ConsoleSink"]


class ConsoleSink:
    def __init__(
        self, name: str = "console", *, stream: BinaryIO | None = None, max_batch: int = 500
    ) -> None:
        self.name = name
        self.max_batch = max_batch
        self._stream = stream

    def translate(self, event: Event) -> Sequence[bytes]:
        return (encode_event(event),)

    def deliver(self, batch: Sequence[bytes]) -> Sequence[Rejection]:
        stream = self._stream if self._stream is not None else sys.stdout.buffer
        stream.write(b"".join(batch))
        stream.flush()
        return ()

    def close(self) -> None:
        return None
