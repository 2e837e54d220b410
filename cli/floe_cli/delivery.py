"""Waiting, within a bound, for the sidecar to deliver what a run emitted.

The pipeline has already finished when this starts, and its outcome is already decided: this only
decides how long `floe run` lingers so that lineage and traces land before it exits. It stops as
soon as every sink has caught up, when the time is up, when the sidecar is gone, or when every sink
that still has events is failing (refused, erroring, or stuck in a delivery) for a while: a dead
endpoint costs seconds, never a hang. What is left stays in the spool, listed by sink.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from floe_cli.sidecar import read_status
from floe_core.status import SidecarStatus, SinkStatus

__all__ = ["DeliveryWait", "failing", "wait_for_delivery"]

#: A deliver call running this long counts as a failing endpoint.
STUCK_AFTER_S = 5.0


@dataclass(frozen=True)
class DeliveryWait:
    """How waiting for the sidecar ended (not a delivery itself: the sidecar delivers)."""

    status: SidecarStatus | None
    complete: bool
    reason: str  # "delivered", "timeout", "endpoints failing", "sidecar stopped", "no status"
    waited_s: float


def failing(sink: SinkStatus) -> bool:
    """Its endpoint refuses, errs or hangs right now."""
    return sink.consecutive_failures > 0 or (sink.delivering_for_s or 0.0) >= STUCK_AFTER_S


def wait_for_delivery(
    spool: Path,
    *,
    timeout_s: float,
    give_up_failing_after_s: float = 5.0,
    interval_s: float = 0.25,
    env: Mapping[str, str] | None = None,
    on_wait: Callable[[SidecarStatus], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryWait:
    """Poll ``floe-sidecar status`` until nothing is pending, or a reason to stop waiting."""
    start = clock()
    deadline = start + timeout_s
    failing_since: float | None = None
    announced = False
    status: SidecarStatus | None = None
    while True:
        now = clock()
        status = read_status(spool, env)
        if status is None:
            return DeliveryWait(None, False, "no status", now - start)
        # A fresh sidecar lists its sinks within a status interval; before that, zero pending
        # would only mean it has not looked yet.
        if status.pending_events == 0 and (status.sinks or status.segments == 0):
            return DeliveryWait(status, True, "delivered", now - start)
        if not status.running:
            return DeliveryWait(status, False, "sidecar stopped", now - start)
        stuck = [s for s in status.sinks if s.pending_events]
        if stuck and all(failing(s) for s in stuck):
            failing_since = now if failing_since is None else failing_since
            if now - failing_since >= give_up_failing_after_s:
                return DeliveryWait(status, False, "endpoints failing", now - start)
        else:
            failing_since = None
        if now >= deadline:
            return DeliveryWait(status, False, "timeout", now - start)
        if not announced and on_wait is not None and now - start >= 1.0:
            announced = True
            on_wait(status)
        sleep(interval_s)
