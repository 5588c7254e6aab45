"""Lambda's scaling rate, as pure state: each function adds at most `limit` new concurrent
environments in any `window` seconds (Lambda: 1,000 every 10 s), beyond those already warm or
provisioned. The caller asks only when an invocation needs a new environment; an invocation a
warm or provisioned one serves never counts. Limits are per namespace (Lambda: per account).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_LIMIT = 1000
DEFAULT_WINDOW = 10.0


@dataclass
class ScalingRate:
    limit: int = DEFAULT_LIMIT  # every namespace not in `per_namespace`
    window: float = DEFAULT_WINDOW
    per_namespace: Mapping[str, int] = field(default_factory=dict)
    _starts: dict[tuple[str, str], deque[float]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.window <= 0 or self.limit < 0 or any(v < 0 for v in self.per_namespace.values()):
            raise ValueError("need a positive window and limits >= 0")

    def limit_for(self, namespace: str) -> int:
        return self.per_namespace.get(namespace, self.limit)

    def allow(self, namespace: str, function: str, now: float) -> bool:
        """Whether `function` may add a new environment at `now` (seconds, monotonic); counts
        it if so. At most `limit` are allowed in any `window`, sliding."""
        starts = self._starts.get((namespace, function))
        if starts is None:
            starts = self._starts[(namespace, function)] = deque()
        horizon = now - self.window
        while starts and starts[0] <= horizon:
            starts.popleft()
        if len(starts) >= self.limit_for(namespace):
            return False
        starts.append(now)
        return True

    def recent(self, namespace: str, function: str, now: float) -> int:
        """New environments counted in the window ending at `now` (metrics, tests)."""
        starts = self._starts.get((namespace, function), deque())
        return sum(1 for t in starts if t > now - self.window)


def parse_rates(values: list[str]) -> tuple[int, dict[str, int]]:
    """`--scaling-rate` values: `N` sets the default, `NS=N` one namespace's limit. Raises
    ValueError naming the bad value."""
    default = DEFAULT_LIMIT
    per: dict[str, int] = {}
    for value in values:
        name, sep, number = value.rpartition("=")
        try:
            limit = int(number)
        except ValueError:
            raise ValueError(f"--scaling-rate {value!r}: want N or NAMESPACE=N") from None
        if limit < 0 or (sep and not name):
            raise ValueError(f"--scaling-rate {value!r}: want N or NAMESPACE=N, N >= 0")
        if sep:
            per[name] = limit
        else:
            default = limit
    return default, per
