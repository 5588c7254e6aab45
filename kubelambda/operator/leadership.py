"""Leader election on a `coordination.k8s.io` Lease: the decisions, without I/O.

One operator replica leads; the others wait. Expiry is judged as client-go's leaderelection
does, by the candidate's own clock: a record (holder, renewTime) that has not changed for the
Lease's `leaseDurationSeconds` since this process first saw it is free, so clocks that disagree
between nodes do not matter. A leader that cannot renew within `renew_deadline` (shorter than
the duration) stops acting before any standby may take over: pools are never kept by two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class LeaseTimes:
    duration: float = 10.0  # a record unchanged for this long is free
    renew_deadline: float = 7.0  # a leader that has not renewed for this long stops
    retry: float = 2.0  # how often candidates try and leaders renew

    def __post_init__(self) -> None:
        if not 0 < self.retry < self.renew_deadline < self.duration:
            raise ValueError("lease times must satisfy 0 < retry < renew deadline < duration")


@dataclass(frozen=True)
class Observed:
    """The Lease record as this candidate last saw it, and when (monotonic seconds) it changed."""

    holder: str
    renewed: str
    duration: float
    since: float

    def same_record(self, other: Observed) -> bool:
        return (self.holder, self.renewed) == (other.holder, other.renewed)


def observe(lease: dict[str, Any] | None, now: float, previous: Observed | None) -> Observed:
    """The record in `lease` (None: no Lease yet), keeping the first time it was seen."""
    spec = (lease or {}).get("spec") or {}
    seen = Observed(
        holder=str(spec.get("holderIdentity") or ""),
        renewed=str(spec.get("renewTime") or ""),
        duration=float(spec.get("leaseDurationSeconds") or 0),
        since=now,
    )
    if previous is not None and previous.same_record(seen):
        return Observed(seen.holder, seen.renewed, seen.duration, previous.since)
    return seen


def may_take(observed: Observed, identity: str, now: float) -> bool:
    """Whether `identity` may write itself into the Lease now."""
    if not observed.holder or observed.holder == identity:
        return True
    return now - observed.since >= observed.duration


def micro_time(wall: float) -> str:
    """A MicroTime, as Lease timestamps are written."""
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def claimed(
    lease: dict[str, Any] | None,
    *,
    namespace: str,
    name: str,
    identity: str,
    times: LeaseTimes,
    wall: float,
) -> dict[str, Any]:
    """The Lease with `identity` holding it, renewed at `wall`; its resourceVersion is kept, so
    a replace fails with 409 if anyone wrote the Lease since it was read."""
    meta = dict((lease or {}).get("metadata") or {"name": name, "namespace": namespace})
    spec = dict((lease or {}).get("spec") or {})
    stamp = micro_time(wall)
    if spec.get("holderIdentity") != identity:
        spec["acquireTime"] = stamp
        if spec.get("holderIdentity"):
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        else:
            spec.setdefault("leaseTransitions", 0)
    spec["holderIdentity"] = identity
    spec["leaseDurationSeconds"] = max(1, round(times.duration))
    spec["renewTime"] = stamp
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}


def released(lease: dict[str, Any], wall: float) -> dict[str, Any]:
    """The Lease given up at a clean stop, so a standby takes over at its next try."""
    spec = {**(lease.get("spec") or {}), "holderIdentity": "", "leaseDurationSeconds": 1}
    spec["renewTime"] = micro_time(wall)
    return {**lease, "spec": spec}
