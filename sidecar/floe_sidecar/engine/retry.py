"""When to try a failed delivery again, and when (if ever) to give up on it.

Exponential backoff with jitter, capped; by default a batch is retried forever, because the
spool is durable and the endpoint will come back. A configured give-up moves the batch to the
dead-letter file with the last error: it is never dropped silently.

Throttling: an endpoint that answers 429 or 503 with ``Retry-After`` is asking for a pause; the
sink raises a :class:`~floe_core.errors.DeliveryError` carrying it (``retry_after``) and the
next attempt waits at least that long (at most ``max_throttle_delay``, so a hostile or broken
header cannot stall a sink for days), instead of hammering a backend that is shedding load.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = ["THROTTLE_STATUSES", "RetryPolicy", "parse_retry_after"]

#: HTTP answers that may carry ``Retry-After``: too many requests, service unavailable.
THROTTLE_STATUSES = frozenset({429, 503})


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP-date, RFC 9110);
    None when absent or unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


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
    #: The longest pause a ``Retry-After`` may impose.
    max_throttle_delay: float = 300.0

    def __post_init__(self) -> None:
        if self.initial_delay <= 0 or self.max_delay < self.initial_delay:
            raise ValueError("retry delays must satisfy 0 < initial_delay <= max_delay")
        if self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("retry multiplier must be >= 1 and jitter within [0, 1]")
        if self.give_up_attempts is not None and self.give_up_attempts < 1:
            raise ValueError("give_up_attempts must be at least 1")
        if self.give_up_after is not None and self.give_up_after < 0:
            raise ValueError("give_up_after must not be negative")
        if self.max_throttle_delay < 0:
            raise ValueError("max_throttle_delay must not be negative")

    def delay(self, failures: int, rand: random.Random | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, failures - 1))
        draw = (rand or _random).random()
        return base * (1 - self.jitter * draw)

    def delay_after(
        self, failures: int, retry_after: float | None, rand: random.Random | None = None
    ) -> float:
        """:meth:`delay`, or the endpoint's ``Retry-After`` when that is longer (capped)."""
        delay = self.delay(failures, rand)
        if retry_after is not None and retry_after > delay:
            delay = min(retry_after, self.max_throttle_delay)
        return delay

    def gives_up(self, failures: int, failing_for: float) -> bool:
        if self.give_up_attempts is not None and failures >= self.give_up_attempts:
            return True
        return self.give_up_after is not None and failing_for >= self.give_up_after

    @property
    def retries_forever(self) -> bool:
        return self.give_up_attempts is None and self.give_up_after is None


_random = random.Random()  # noqa: S311 - jitter, not security
