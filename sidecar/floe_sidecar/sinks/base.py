"""What a sink is: a pure translation plus a blocking delivery, each sink with its own cursor.

The engine reads events from the spool, asks each sink to ``translate`` them (pure: no I/O, no
clock, no randomness), batches the results, and calls ``deliver`` in a worker thread. A batch whose
``deliver`` returns moves the sink's cursor past it; items listed as rejected go to the dead-letter
file with the reason. A batch whose ``deliver`` raises is retried, unchanged, with backoff: the
cursor stays where it is, so nothing is lost when an endpoint is down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from floe_core.events import Event
from floe_core.status import SidecarStatus

__all__ = ["HealthObserver", "Rejection", "Sink", "StatefulSink"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rejection:
    """The endpoint refused one item for good (e.g. HTTP 400); retrying would not help."""

    index: int  # position of the item in the delivered batch
    reason: str  # what the endpoint said, for the dead-letter file


class Sink(Protocol[T]):
    #: Unique among the configured sinks; names the sink's cursor file and its log lines.
    name: str
    #: Most items handed to one ``deliver`` call.
    max_batch: int

    def translate(self, event: Event) -> Sequence[T]:
        """Items this sink delivers for one event (possibly none). Must be pure."""
        ...

    def deliver(self, batch: Sequence[T]) -> Sequence[Rejection]:
        """Deliver a batch; blocking is fine (runs in a worker thread). Raise to retry it all."""
        ...

    def close(self) -> None:
        """Release connections; called once at shutdown."""
        ...


class StatefulSink(Protocol):
    """Optional, besides :class:`Sink`: a sink whose deliveries build on state (cumulative
    metrics). The engine keeps the state in the sink's cursor, written with its positions in one
    atomic save, so a batch delivered again after a crash builds on the state it was first
    delivered on.

    Order: ``restore`` once (and again after the runner restarts), then per batch ``deliver`` ->
    ``checkpoint`` (the state including that batch, not yet on disk) -> the cursor is saved ->
    ``committed``. A ``deliver`` that raised, or a cursor that could not be saved, leaves the
    committed state as it was, and the retried batch builds on that again.
    """

    def restore(self, state: bytes | None) -> None:
        """Start from ``state`` (the cursor's; None for a new cursor)."""
        ...

    def checkpoint(self) -> bytes | None:
        """The state to save with the batch just delivered (None: no state)."""
        ...

    def committed(self) -> None:
        """The checkpoint is on disk: the next ``deliver`` builds on it."""
        ...


class HealthObserver(Protocol):
    """Optional, besides :class:`Sink`: a sink that reports the sidecar's own health (the
    metrics sink). The engine calls ``observe`` every ``health_interval`` seconds and once when
    it stops, on a thread of its own; a call that fails or hangs is simply superseded by the next.
    """

    health_interval: float

    def observe(self, status: SidecarStatus) -> None: ...
