"""The retry policy, exactly: the backoff's every step and bound, when it gives up (never, by
default), how long a ``Retry-After`` may hold a sink, and which policies are refused."""

from __future__ import annotations

import random

import pytest

from floe_sidecar.engine.retry import THROTTLE_STATUSES, RetryPolicy, parse_retry_after


class Draw(random.Random):
    """A "random" source that always draws ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


LOWEST, HIGHEST = Draw(0.0), Draw(1.0)
DELAYS = "retry delays must satisfy 0 < initial_delay <= max_delay"
PACE = "retry multiplier must be >= 1 and jitter within [0, 1]"


def test_the_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=4.0, multiplier=2.0, jitter=0.5)
    nominal = [policy.delay(failures, LOWEST) for failures in range(0, 7)]
    assert nominal == [0.5, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_jitter_draws_within_the_lower_part_of_the_nominal_delay() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=8.0, multiplier=2.0, jitter=0.25)
    assert policy.delay(3, LOWEST) == 4.0
    assert policy.delay(3, HIGHEST) == 3.0  # 4 * (1 - 0.25)
    assert policy.delay(3, Draw(0.5)) == 3.5
    drawn = [policy.delay(3) for _ in range(200)]  # the module's own source
    assert all(3.0 <= d <= 4.0 for d in drawn) and len(set(drawn)) > 1


def test_a_multiplier_of_one_and_no_jitter_retry_at_a_constant_pace() -> None:
    policy = RetryPolicy(initial_delay=2.0, max_delay=2.0, multiplier=1.0, jitter=0.0)
    assert {policy.delay(n, HIGHEST) for n in range(1, 10)} == {2.0}


def test_retry_after_lengthens_the_pause_but_never_beyond_its_cap() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=8.0, jitter=0.0, max_throttle_delay=60.0)
    assert policy.delay_after(1, None, LOWEST) == 1.0
    assert policy.delay_after(1, 30.0, LOWEST) == 30.0
    assert policy.delay_after(1, 60.0, LOWEST) == 60.0
    assert policy.delay_after(1, 61.0, LOWEST) == 60.0
    assert policy.delay_after(4, 3.0, LOWEST) == 8.0  # shorter than the backoff: the backoff
    assert policy.delay_after(4, 8.0, LOWEST) == 8.0
    assert policy.delay_after(1, 0.0, LOWEST) == 1.0
    capped_low = RetryPolicy(initial_delay=5.0, max_delay=5.0, jitter=0.0, max_throttle_delay=2.0)
    assert capped_low.delay_after(1, 3.0, LOWEST) == 5.0  # the cap never shortens the backoff
    assert capped_low.delay_after(1, 5.0, LOWEST) == 5.0


def test_retry_after_is_compared_with_the_jittered_backoff() -> None:
    policy = RetryPolicy(initial_delay=4.0, max_delay=4.0, jitter=0.5, max_throttle_delay=60.0)
    assert policy.delay_after(1, None, HIGHEST) == 2.0  # the draw reaches the backoff
    assert policy.delay_after(1, 3.0, HIGHEST) == 3.0  # longer than the drawn 2 s: it wins
    assert policy.delay_after(1, 3.0, LOWEST) == 4.0


def test_by_default_a_batch_is_retried_forever() -> None:
    policy = RetryPolicy()
    assert policy.retries_forever
    assert not policy.gives_up(10**9, 10.0**9)
    assert (policy.initial_delay, policy.max_delay, policy.multiplier, policy.jitter) == (
        0.5,
        30.0,
        2.0,
        0.5,
    )
    assert policy.max_throttle_delay == 300.0


def test_giving_up_after_attempts_or_time_whichever_comes_first() -> None:
    by_attempts = RetryPolicy(give_up_attempts=3)
    assert not by_attempts.retries_forever
    assert [by_attempts.gives_up(n, 10.0**6) for n in (1, 2, 3, 4)] == [False, False, True, True]
    by_time = RetryPolicy(give_up_after=60.0)
    assert not by_time.retries_forever
    assert [by_time.gives_up(10**6, s) for s in (0.0, 59.9, 60.0, 61.0)] == [
        False,
        False,
        True,
        True,
    ]
    both = RetryPolicy(give_up_attempts=5, give_up_after=60.0)
    assert both.gives_up(5, 0.0) and both.gives_up(1, 60.0) and not both.gives_up(4, 59.0)
    assert RetryPolicy(give_up_attempts=1).gives_up(1, 0.0)
    assert RetryPolicy(give_up_after=0.0).gives_up(1, 0.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"initial_delay": 0.0}, DELAYS),
        ({"initial_delay": -1.0}, DELAYS),
        ({"initial_delay": 2.0, "max_delay": 1.0}, DELAYS),
        ({"multiplier": 0.99}, PACE),
        ({"jitter": -0.01}, PACE),
        ({"jitter": 1.01}, PACE),
        ({"give_up_attempts": 0}, "give_up_attempts must be at least 1"),
        ({"give_up_after": -0.5}, "give_up_after must not be negative"),
        ({"max_throttle_delay": -1.0}, "max_throttle_delay must not be negative"),
    ],
)
def test_an_impossible_policy_is_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        RetryPolicy(**options)  # type: ignore[arg-type]
    assert str(refused.value) == message  # the CLI shows it as is


@pytest.mark.parametrize(
    "options",
    [
        {"initial_delay": 1.0, "max_delay": 1.0},
        {"multiplier": 1.0},
        {"jitter": 0.0},
        {"jitter": 1.0},
        {"give_up_attempts": 1},
        {"give_up_after": 0.0},
        {"max_throttle_delay": 0.0},
    ],
)
def test_the_boundaries_of_a_policy_are_allowed(options: dict[str, float]) -> None:
    RetryPolicy(**options)  # type: ignore[arg-type]


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after("-5") == 0.0  # never a negative pause
    for unreadable in (None, "", "   ", "soon", "inf", "-inf", "nan", "1e999"):
        assert parse_retry_after(unreadable) is None, unreadable


def test_retry_after_as_an_http_date() -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"  # 1445412480
    assert parse_retry_after(date, now=1445412400.0) == 80.0
    assert parse_retry_after(f"  {date}  ", now=1445412400.0) == 80.0
    assert parse_retry_after(date, now=1445412500.0) == 0.0  # already past: no pause
    assert parse_retry_after(date) == 0.0  # measured from the clock: long past
    future = parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT")
    assert future is not None and future > 365 * 24 * 3600
    assert parse_retry_after("Wed, 32 Oct 2015 07:28:00 GMT", now=0.0) is None


def test_throttling_answers_are_429_and_503() -> None:
    assert frozenset({429, 503}) == THROTTLE_STATUSES
