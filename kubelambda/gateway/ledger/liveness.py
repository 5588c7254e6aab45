"""Which replicas are alive, judged on our own clock (pure).

A heartbeat counts as alive while it has changed within its duration *as we observed it*: we
never compare another host's renewTime with our clock, so clock offsets between nodes do not
matter, only clock rates. A heartbeat seen for the first time gets a full duration. Another
replica can only count us dead a full duration after it saw our last renewal, which was after
we sent it; we fence ourselves at three quarters of it after sending (`Fence`), so we stop
admitting before anyone may take our allotment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Beat:
    holder: str
    renewed: str  # as stored; only compared for change
    duration: float


@dataclass
class Liveness:
    _seen: dict[str, tuple[str, float, float]] = field(default_factory=dict)

    def observe(self, beats: Iterable[Beat], now: float) -> None:
        present = set()
        for beat in beats:
            present.add(beat.holder)
            before = self._seen.get(beat.holder)
            if before is None or before[0] != beat.renewed:
                self._seen[beat.holder] = (beat.renewed, now, beat.duration)
        for holder in set(self._seen) - present:
            del self._seen[holder]  # no heartbeat object at all: not alive

    def live(self, now: float) -> set[str]:
        return {h for h, (_, at, duration) in self._seen.items() if now - at < duration}

    def dead_for(self, holder: str, now: float) -> float:
        """Seconds since `holder`'s heartbeat expired as we saw it (<= 0: alive or unknown)."""
        seen = self._seen.get(holder)
        return 0.0 if seen is None else now - seen[1] - seen[2]


@dataclass
class Fence:
    """Our own heartbeat: valid until 3/4 of its duration after the last renewal was *sent*."""

    duration: float
    sent: float | None = None

    def renewed(self, sent_at: float) -> None:
        self.sent = sent_at

    @property
    def until(self) -> float:
        return -1.0 if self.sent is None else self.sent + self.duration * 0.75

    def valid(self, now: float) -> bool:
        return now < self.until
