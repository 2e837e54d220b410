"""Sinks loaded by a real ``floe-sidecar`` process in the tests, through the documented plugin
option ``--sink python:support.plugins:FACTORY`` (the tests put ``tests/`` on PYTHONPATH).

They are ordinary sinks: a factory taking the SidecarSettings and returning a sink.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Sequence

from floe_sidecar import Event, Rejection, SidecarSettings


class HttpIdsSink:
    """POSTs the event ids of a batch as a JSON array; anything but 2xx raises (so: retry)."""

    name = "http"

    def __init__(self, url: str, max_batch: int) -> None:
        self.url = url
        self.max_batch = max_batch

    def translate(self, event: Event) -> Sequence[str]:
        return (event.event_id,)

    def deliver(self, batch: Sequence[str]) -> Sequence[Rejection]:
        body = ("[" + ",".join(f'"{i}"' for i in batch) + "]").encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
        return ()

    def close(self) -> None:
        return None


def http_sink(settings: SidecarSettings) -> HttpIdsSink:
    env = settings.environ
    return HttpIdsSink(env["FLOE_TEST_SINK_URL"], int(env.get("FLOE_TEST_SINK_BATCH", "100")))


class HangingSink:
    """A sink whose endpoint never answers: ``deliver`` blocks forever."""

    name = "hang"
    max_batch = 10

    def __init__(self) -> None:
        self._never = threading.Event()

    def translate(self, event: Event) -> Sequence[str]:
        return (event.event_id,)

    def deliver(self, batch: Sequence[str]) -> Sequence[Rejection]:
        self._never.wait()
        return ()

    def close(self) -> None:
        return None


def hanging_sink(settings: SidecarSettings) -> HangingSink:
    return HangingSink()
