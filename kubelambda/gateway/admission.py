"""Concurrency admission with Lambda's accounting, as pure state (no I/O, no awaits).

A namespace plays the part of an AWS account. Its pool has a `total` (Lambda's account
concurrency) of which `unreserved_floor` can never be reserved. An invocation is admitted, in
this order, by:

1. **provisioned** capacity of the qualifier it names (an alias or a version), while some of it
   is free;
2. the function's **reserved** concurrency, if it has one. Provisioned capacity is carved out of
   the reservation, so standard invocations get `reserved - provisioned`;
3. the namespace's **unreserved** pool: `total - sum(reserved) - provisioned of unreserved
   functions`, shared by every function without a reservation.

Otherwise the call is throttled with Lambda's reason. Everything runs on one event loop, so
acquire and release need no locks: the ledger is a few dict updates on the hot path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from kubelambda.serving.errors import ACCOUNT_LIMIT, RESERVED_LIMIT

LeaseKind = Literal["provisioned", "reserved", "unreserved"]


@dataclass(frozen=True)
class PoolLimits:
    total: int = 1000
    unreserved_floor: int = 100
    # Lambda's scaling rate: new environments per function per 10 s (ledger/rate.py), the
    # default and (namespace, limit) exceptions.
    scaling_rate: int = 1000
    scaling_rates: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if self.total < 1 or not 0 <= self.unreserved_floor <= self.total:
            raise ValueError("need total >= 1 and 0 <= unreserved floor <= total")


@dataclass(frozen=True)
class Lease:
    function: str
    kind: LeaseKind
    qualifier: str | None = None  # set for provisioned leases


@dataclass(frozen=True)
class Throttle:
    reason: str


class ConcurrencyLedger:
    """In-flight accounting for one namespace."""

    def __init__(self, limits: PoolLimits | None = None) -> None:
        self.limits = limits or PoolLimits()
        self._reserved: dict[str, int] = {}
        self._provisioned: dict[tuple[str, str], int] = {}
        self._standard_cap: dict[str, int] = {}  # reserved functions: reserved - provisioned
        self._unreserved_cap = self.limits.total
        self.problems: list[str] = []
        self.refused: dict[str, int] = {}  # reservations asked for that did not fit
        self._in_flight: Counter[str] = Counter()  # per function, every kind
        self._standard: Counter[str] = Counter()  # per reserved function, standard leases
        self._provisioned_busy: Counter[tuple[str, str]] = Counter()
        self._unreserved_busy = 0

    def configure(
        self,
        reserved: Mapping[str, int],
        provisioned: Mapping[tuple[str, str], int] | None = None,
    ) -> list[str]:
        """Sets reservations and provisioned capacity; returns what could not be honoured.

        Like Lambda's PutFunctionConcurrency, a reservation that would leave less than the
        unreserved floor is refused (here: reported and ignored, in name order). Provisioned
        capacity is cut to the function's reservation, or for unreserved functions to what the
        floor leaves.
        """
        provisioned = dict(provisioned or {})
        problems: list[str] = []
        room = self.limits.total - self.limits.unreserved_floor
        honoured: dict[str, int] = {}
        refused: dict[str, int] = {}
        for function in sorted(reserved):
            want = reserved[function]
            if want > room:
                problems.append(
                    f"{function}: reservedConcurrency {want} does not fit; only {room} can be "
                    f"reserved while keeping {self.limits.unreserved_floor} unreserved"
                )
                refused[function] = want
                continue
            honoured[function] = want
            room -= want
        prov_per_function: Counter[str] = Counter()
        for (function, qualifier), amount in sorted(provisioned.items()):
            cap = honoured.get(function)
            if cap is not None and prov_per_function[function] + amount > cap:
                allowed = cap - prov_per_function[function]
                problems.append(
                    f"{function}:{qualifier}: provisionedConcurrency {amount} exceeds the "
                    f"reservation; {allowed} honoured"
                )
                amount = allowed
            elif cap is None:
                # Unreserved functions' provisioned capacity comes out of what may be reserved.
                if amount > room:
                    problems.append(
                        f"{function}:{qualifier}: provisionedConcurrency {amount} does not fit "
                        f"the unreserved pool; {room} honoured"
                    )
                    amount = room
                room -= amount
            provisioned[(function, qualifier)] = amount
            prov_per_function[function] += amount
        unreserved_prov = sum(v for f, v in prov_per_function.items() if f not in honoured)
        self._reserved = honoured
        self.refused = refused
        self._provisioned = {k: v for k, v in provisioned.items() if v > 0}
        self._standard_cap = {f: r - prov_per_function[f] for f, r in honoured.items()}
        self._unreserved_cap = max(self.limits.total - sum(honoured.values()) - unreserved_prov, 0)
        self.problems = problems
        return problems

    def in_force(self) -> tuple[dict[str, int], dict[tuple[str, str], int], int]:
        """Every capacity admission enforces: reserved functions' standard capacity,
        provisioned capacity per (function, qualifier), the unreserved pool."""
        return dict(self._standard_cap), dict(self._provisioned), self._unreserved_cap

    def reservation(self, function: str) -> int | None:
        """The reservation in force for `function`: None if it has none or it did not fit."""
        return self._reserved.get(function)

    def acquire(self, function: str, qualifier: str | None = None) -> Lease | Throttle:
        if qualifier is not None:
            key = (function, qualifier)
            if self._provisioned_busy[key] < self._provisioned.get(key, 0):
                self._provisioned_busy[key] += 1
                self._in_flight[function] += 1
                return Lease(function, "provisioned", qualifier)
        cap = self._standard_cap.get(function)
        if cap is not None:
            if self._standard[function] >= cap:
                return Throttle(RESERVED_LIMIT)
            self._standard[function] += 1
            self._in_flight[function] += 1
            return Lease(function, "reserved")
        if self._unreserved_busy >= self._unreserved_cap:
            return Throttle(ACCOUNT_LIMIT)
        self._unreserved_busy += 1
        self._in_flight[function] += 1
        return Lease(function, "unreserved")

    def release(self, lease: Lease) -> None:
        self._in_flight[lease.function] -= 1
        if lease.kind == "provisioned":
            assert lease.qualifier is not None
            self._provisioned_busy[(lease.function, lease.qualifier)] -= 1
        elif lease.kind == "reserved":
            self._standard[lease.function] -= 1
        else:
            self._unreserved_busy -= 1

    # Read-only views, for metrics, GetFunctionConcurrency and tests.

    def in_flight(self, function: str | None = None) -> int:
        if function is None:
            return sum(self._in_flight.values())
        return self._in_flight[function]

    def reserved(self, function: str) -> int | None:
        return self._reserved.get(function)

    def provisioned(self, function: str, qualifier: str) -> int:
        return self._provisioned.get((function, qualifier), 0)

    def provisioned_busy(self, function: str, qualifier: str) -> int:
        return self._provisioned_busy[(function, qualifier)]

    def standard_busy(self, function: str) -> int:
        return self._standard[function]

    def standard_cap(self, function: str) -> int | None:
        return self._standard_cap.get(function)

    @property
    def unreserved_busy(self) -> int:
        return self._unreserved_busy

    @property
    def unreserved_capacity(self) -> int:
        return self._unreserved_cap
