"""Lambda's async retry delays, as pure arithmetic.

After a function error Lambda waits about one minute before the second attempt and about two
minutes before the third: `base * 2**(attempt - 1)`. A throttled event (admission said 429)
does not use up an attempt; it is retried with exponential backoff from `throttle_base` up to
`throttle_cap` (Lambda: 1 s up to 5 min), with jitter, so that a burst spreads out instead of
retrying in lockstep. `scaled(base)` keeps those proportions for a shorter base (tests).
"""

from __future__ import annotations

from dataclasses import dataclass

LAMBDA_BASE = 60.0
MIN_DELAY = 0.01  # never spin on a retry


@dataclass(frozen=True)
class RetrySchedule:
    base: float = LAMBDA_BASE
    throttle_base: float = 1.0
    throttle_cap: float = 300.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.throttle_base <= 0 or self.throttle_cap < self.throttle_base:
            raise ValueError("need base > 0 and 0 < throttle_base <= throttle_cap")

    @classmethod
    def scaled(cls, base: float) -> RetrySchedule:
        """Lambda's schedule with the first retry after `base` seconds instead of 60."""
        factor = base / LAMBDA_BASE
        return cls(base=base, throttle_base=1.0 * factor, throttle_cap=300.0 * factor)

    def after_error(self, attempts: int) -> float:
        """The wait after the `attempts`-th failed attempt (1 -> base, 2 -> 2 * base)."""
        return max(self.base * 2.0 ** max(attempts - 1, 0), MIN_DELAY)

    def after_throttle(self, throttles: int, draw: float) -> float:
        """The wait after the `throttles`-th throttle; `draw` in [0, 1) picks the jitter."""
        ceiling = min(self.throttle_cap, self.throttle_base * 2.0 ** min(max(throttles - 1, 0), 40))
        return max(ceiling * (0.5 + draw / 2), MIN_DELAY)
