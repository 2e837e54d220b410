"""A sink for the latency benchmark, loaded by floe-sidecar as
``--sink python:sidecar_bench_sinks:latency_sink`` (PYTHONPATH=bench).

It records, for every event, when the adapter wrote it (``emitted_at``) and when the sink
accepted it (the start of ``deliver``), both on this machine's clock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import datetime

from floe_sidecar import Event, Rejection, SidecarSettings


class LatencySink:
    name = "latency"
    max_batch = 1000

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def translate(self, event: Event) -> Sequence[tuple[str, datetime]]:
        return ((event.event_id, event.emitted_at),)

    def deliver(self, batch: Sequence[tuple[str, datetime]]) -> Sequence[Rejection]:
        accepted = time.time_ns()
        rows = "".join(
            f"{eid} {int(at.timestamp() * 1e6)} {accepted // 1000}\n" for eid, at in batch
        )
        os.write(self._fd, rows.encode())
        return ()

    def close(self) -> None:
        os.close(self._fd)


def latency_sink(settings: SidecarSettings) -> LatencySink:
    return LatencySink(settings.environ["FLOE_BENCH_LATENCY_OUT"])
