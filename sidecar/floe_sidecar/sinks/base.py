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

__all__ = ["Rejection", "Sink"]

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
