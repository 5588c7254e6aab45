"""What happens to an event next, as a pure function of the event, its limits and the time.

The worker asks before an attempt (`expired`), after an attempt (`after_attempt`) and after a
throttle (`after_throttle`); the answer is either `Retry` (record the step, hold the event back)
or `Finish` with Lambda's condition. A retry never waits past the event's maximum age: it is
held until the moment the age runs out, so EventAgeExceeded is reported on time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kubelambda.gateway.asyncq.event import AsyncEvent
from kubelambda.gateway.asyncq.schedule import RetrySchedule

Condition = Literal["Success", "RetriesExhausted", "EventAgeExceeded"]


@dataclass(frozen=True)
class Limits:
    max_retries: int  # maximumRetryAttempts
    max_age: float  # maximumEventAgeInSeconds


@dataclass(frozen=True)
class Retry:
    event: AsyncEvent  # the next step, to record
    delay: float


@dataclass(frozen=True)
class Finish:
    condition: Condition
    event: AsyncEvent


def expired(event: AsyncEvent, limits: Limits, now: float) -> bool:
    return event.age(now) >= limits.max_age


def _hold(event: AsyncEvent, delay: float, limits: Limits, now: float) -> Retry | Finish:
    left = event.received_at + limits.max_age - now
    if left <= 0:
        return Finish("EventAgeExceeded", event)
    return Retry(event, min(delay, left))


def after_attempt(
    event: AsyncEvent, failed: bool, limits: Limits, now: float, schedule: RetrySchedule
) -> Retry | Finish:
    """`event` as it was before the attempt; the attempt is counted here."""
    tried = event.step(attempts=event.attempts + 1)
    if not failed:
        return Finish("Success", tried)
    if tried.attempts > limits.max_retries:
        return Finish("RetriesExhausted", tried)
    return _hold(tried, schedule.after_error(tried.attempts), limits, now)


def after_throttle(
    event: AsyncEvent, limits: Limits, now: float, schedule: RetrySchedule, draw: float
) -> Retry | Finish:
    """Admission refused the event: hold it back without using up an attempt."""
    held = event.step(throttles=event.throttles + 1)
    return _hold(held, schedule.after_throttle(held.throttles, draw), limits, now)
