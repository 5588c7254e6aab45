"""The retry schedule and the next-step policy: pure arithmetic, checked directly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelambda.gateway.asyncq.event import AsyncEvent
from kubelambda.gateway.asyncq.policy import (
    Finish,
    Limits,
    Retry,
    after_attempt,
    after_throttle,
    expired,
)
from kubelambda.gateway.asyncq.schedule import MIN_DELAY, RetrySchedule

LAMBDA = RetrySchedule()


def event() -> AsyncEvent:
    return AsyncEvent("default", "fn", None, b"{}", received_at=1000.0)


def test_lambda_schedule_waits_one_then_two_minutes() -> None:
    assert LAMBDA.after_error(1) == 60.0
    assert LAMBDA.after_error(2) == 120.0


def test_scaled_schedule_keeps_lambdas_proportions() -> None:
    fast = RetrySchedule.scaled(0.5)
    assert (fast.after_error(1), fast.after_error(2)) == (0.5, 1.0)
    assert fast.throttle_base == pytest.approx(0.5 / 60)
    assert fast.throttle_cap == pytest.approx(2.5)


def test_invalid_schedule_is_refused() -> None:
    with pytest.raises(ValueError):
        RetrySchedule(base=0)
    with pytest.raises(ValueError):
        RetrySchedule(throttle_base=10, throttle_cap=1)


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0, max_value=0.999))
def test_throttle_backoff_is_jittered_below_its_doubling_ceiling(n: int, draw: float) -> None:
    delay = LAMBDA.after_throttle(n, draw)
    ceiling = min(300.0, 1.0 * 2 ** (n - 1))
    assert max(ceiling / 2, MIN_DELAY) <= delay <= ceiling


def test_throttle_backoff_grows_then_stops_at_five_minutes() -> None:
    delays = [LAMBDA.after_throttle(n, 0.999999) for n in range(1, 12)]
    assert delays == sorted(delays)
    assert delays[0] == pytest.approx(1.0, rel=1e-3)
    assert delays[-1] == pytest.approx(300.0, rel=1e-3)


LIMITS = Limits(max_retries=2, max_age=21600)


def test_success_finishes_and_counts_the_attempt() -> None:
    step = after_attempt(event(), False, LIMITS, 1001.0, LAMBDA)
    assert isinstance(step, Finish)
    assert step.condition == "Success"
    assert step.event.attempts == 1


@pytest.mark.parametrize("retries", [0, 1, 2])
def test_function_errors_run_one_plus_max_retries_times(retries: int) -> None:
    limits = Limits(max_retries=retries, max_age=21600)
    current, now, runs = event(), 1000.0, 0
    while True:
        runs += 1
        step = after_attempt(current, True, limits, now, LAMBDA)
        if isinstance(step, Finish):
            break
        assert step.delay == LAMBDA.after_error(runs)
        current, now = step.event, now + step.delay
    assert step.condition == "RetriesExhausted"
    assert runs == 1 + retries
    assert step.event.attempts == 1 + retries


def test_a_retry_is_held_only_until_the_age_runs_out() -> None:
    limits = Limits(max_retries=2, max_age=90)
    step = after_attempt(event(), True, limits, now=1050.0, schedule=LAMBDA)
    assert isinstance(step, Retry)
    assert step.delay == pytest.approx(40.0)  # not 60: the event is 90 s old at 1090
    assert expired(step.event, limits, 1050.0 + step.delay)


def test_an_attempt_that_ends_after_the_age_finishes_with_event_age_exceeded() -> None:
    limits = Limits(max_retries=2, max_age=60)
    step = after_attempt(event(), True, limits, now=1075.0, schedule=LAMBDA)
    assert isinstance(step, Finish)
    assert step.condition == "EventAgeExceeded"
    assert step.event.attempts == 1


def test_a_throttle_uses_no_attempt_and_records_a_step() -> None:
    original = event()
    step = after_throttle(original, LIMITS, 1001.0, LAMBDA, 0.5)
    assert isinstance(step, Retry)
    assert (step.event.attempts, step.event.throttles) == (0, 1)
    assert step.event.generation == original.generation + 1
    assert step.delay == pytest.approx(0.75)


def test_throttled_until_the_age_runs_out() -> None:
    limits = Limits(max_retries=2, max_age=60)
    step = after_throttle(event(), limits, 1060.0, LAMBDA, 0.5)
    assert isinstance(step, Finish)
    assert (step.condition, step.event.attempts) == ("EventAgeExceeded", 0)


def test_expired_is_measured_from_acceptance() -> None:
    limits = Limits(max_retries=0, max_age=60)
    assert not expired(event(), limits, 1059.9)
    assert expired(event(), limits, 1060.0)
