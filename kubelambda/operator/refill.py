"""When a warm pool that fell short is topped up: at once, or a short moment after a claim. Pure.

A claim takes a pod out of its pool, and the pool keeper would start the replacement at once:
on a small node the new pod (an agent and a runtime's interpreter starting) then runs on the
same cores as the cold start the claim is for, and roughly doubles it (bench/README.md, "The
claim and the refill"). So a pool that fell short waits `delay` seconds, counted from when the
keeper first saw it short, before it is topped up, and a burst of claims inside that moment is
refilled together. It never waits when fewer than `floor` of its pods are free and Ready (an
empty pool, a burst that drained it: the next caller would wait for a pod), for provisioned
concurrency (capacity promised to a version), or with a delay of 0. The wait is bounded by
`delay` from the first shortfall, so a steady stream of claims cannot hold the refill off.

The clock is an argument; the keeper holds one `RefillGate` and wakes at `wake_at`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Group = tuple[str, ...]  # a pool, as `sizing.pool_of` names it


@dataclass
class RefillGate:
    delay: float = 0.0  # seconds a short pool waits before it is topped up; 0: never waits
    floor: int = 1  # with fewer free Ready pods than this a pool is topped up at once
    _short_since: dict[Group, float] = field(default_factory=dict)

    def allow(self, group: Group, missing: int, free_ready: int, now: float) -> int:
        """How many of the `missing` pods of `group` to create now (0 or `missing`)."""
        if missing <= 0:
            self._short_since.pop(group, None)  # full again (or its pods are starting)
            return 0
        if self.delay <= 0 or group[0] == "provisioned" or free_ready < self.floor:
            self._short_since.pop(group, None)
            return missing
        since = self._short_since.setdefault(group, now)
        if now - since >= self.delay:
            del self._short_since[group]
            return missing
        return 0

    def forget(self, groups: set[Group]) -> None:
        """Drop the pools not seen in a pass (their function went away)."""
        for group in set(self._short_since) - groups:
            del self._short_since[group]

    @property
    def wake_at(self) -> float | None:
        """When the earliest waiting pool is due, or None when none waits."""
        if not self._short_since:
            return None
        return min(self._short_since.values()) + self.delay
