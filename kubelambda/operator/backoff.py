"""Failed pod creates: why the apiserver refused (quota, LimitRange, Pod Security, ...), and the
per-pool exponential backoff before the next try. Pure (the clock is an argument).

A pool whose creates fail (a ResourceQuota that forbids its pods, a LimitRange its requests
break, a Pod Security level its spec violates) is retried after 1, 2, 4, ... seconds, capped, not
on every keeper pass; the first success clears it. The reason is a short CamelCase word for the
Function's `PodsCreated` condition and its Events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CONDITION = "PodsCreated"


def refusal_reason(status: int, message: str) -> str:
    """The Event/condition reason for an apiserver refusal of a pod create."""
    text = message.lower()
    if "exceeded quota" in text or "failed quota" in text:
        return "QuotaExceeded"
    if "violates podsecurity" in text:
        return "PodSecurity"
    if "per container is" in text or "per pod is" in text or "limitrange" in text:
        return "LimitRange"
    if status == 403:
        return "Forbidden"
    if status == 422:
        return "Invalid"
    return "CreateFailed"


@dataclass
class Failure:
    count: int
    until: float  # no create for this pool before this time
    reason: str
    message: str


@dataclass
class CreateBackoff:
    base: float = 1.0
    cap: float = 30.0
    failures: dict[tuple[str, ...], Failure] = field(default_factory=dict)

    def blocked(self, pool: tuple[str, ...], now: float) -> bool:
        failure = self.failures.get(pool)
        return failure is not None and now < failure.until

    def failed(
        self, pool: tuple[str, ...], now: float, reason: str, message: str
    ) -> tuple[Failure, bool]:
        """Record a refusal; creates that failed together in one pass count once (then the
        second value, "a new failure", is False)."""
        failure = self.failures.get(pool)
        if failure is not None and now < failure.until:
            return failure, False
        count = (failure.count if failure else 0) + 1
        delay = min(self.base * 2 ** (count - 1), self.cap)
        self.failures[pool] = Failure(count, now + delay, reason, message)
        return self.failures[pool], True

    def succeeded(self, pool: tuple[str, ...]) -> Failure | None:
        """Clear the pool; returns the failure it had (its condition is to be cleared)."""
        return self.failures.pop(pool, None)


def pool_event(
    involved: dict[str, Any], reason: str, message: str, stamp: str, component: str
) -> dict[str, Any]:
    """A core/v1 Event about `involved` (a Function), as `kubectl describe` shows it."""
    meta = involved.get("metadata", {})
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": f"{meta.get('name', 'function')}.",
            "namespace": meta.get("namespace"),
        },
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind", "Function"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": "Warning",
        "reason": reason,
        "message": message[:1024],
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
