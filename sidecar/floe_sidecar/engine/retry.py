"""When to try a failed delivery again, and when (if ever) to give up on it.

Exponential backoff with jitter, capped; by default a batch is retried forever, because the
spool is durable and the endpoint will come back. A configured give-up moves the batch to the
dead-letter file with the last error: it is never dropped silently.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    #: Each delay is drawn from ``[d * (1 - jitter), d]`` so many sidecars do not retry in step.
    jitter: float = 0.5
    #: Give up on a batch after this many failed attempts (None: never).
    give_up_attempts: int | None = None
    #: Give up on a batch that has been failing for this many seconds (None: never).
    give_up_after: float | None = None

    def __post_init__(self) -> None:
        if self.initial_delay <= 0 or self.max_delay < self.initial_delay:
            raise ValueError("retry delays must satisfy 0 < initial_delay <= max_delay")
        if self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("retry multiplier must be >= 1 and jitter within [0, 1]")
        if self.give_up_attempts is not None and self.give_up_attempts < 1:
            raise ValueError("give_up_attempts must be at least 1")
        if self.give_up_after is not None and self.give_up_after < 0:
            raise ValueError("give_up_after must not be negative")

    def delay(self, failures: int, rand: random.Random | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, failures - 1))
        draw = (rand or _random).random()
        return base * (1 - self.jitter * draw)

    def gives_up(self, failures: int, failing_for: float) -> bool:
        if self.give_up_attempts is not None and failures >= self.give_up_attempts:
            return True
        return self.give_up_after is not None and failing_for >= self.give_up_after

    @property
    def retries_forever(self) -> bool:
        return self.give_up_attempts is None and self.give_up_after is None


_random = random.Random()  # noqa: S311 - jitter, not security
