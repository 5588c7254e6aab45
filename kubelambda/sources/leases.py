"""Which poller replica owns which mapping: a fair, stable assignment and lease decisions. Pure.

Every replica renews a presence Lease; the live replicas are those whose presence has not
expired. All replicas compute the same `assign()` from the same live set and mapping keys:
each mapping goes to the replica with the highest rendezvous weight among those still under
their fair share (mappings / replicas, rounded up for as many as the remainder), so shares
differ by at most one and a change in
the set moves few mappings.

A mapping's Lease says who runs it now. `plan()` tells one replica what to do this round:
take a mapping assigned to it whose Lease is free, expired or already its own; keep renewing
the ones it runs and is assigned; drop (stop, then release) the ones assigned elsewhere. A
replica never takes a Lease another live holder still has, so one mapping has one owner.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LeaseView:
    holder: str | None
    renewed: float  # epoch seconds of the last renewal
    duration: float  # leaseDurationSeconds

    def expired(self, now: float) -> bool:
        return self.holder is None or now >= self.renewed + self.duration

    def held_by_other(self, me: str, now: float) -> bool:
        return not self.expired(now) and self.holder != me


def _weight(replica: str, mapping: str) -> int:
    digest = hashlib.blake2b(f"{replica}\0{mapping}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def alive(presence: Mapping[str, LeaseView], now: float) -> list[str]:
    """The replicas whose presence Lease is current, sorted."""
    return sorted(name for name, lease in presence.items() if not lease.expired(now))


def assign(replicas: Iterable[str], mappings: Iterable[str]) -> dict[str, str]:
    """mapping -> replica, balanced (shares differ by at most one), the same on every replica."""
    members = sorted(set(replicas))
    keys = sorted(set(mappings))
    if not members:
        return {}
    base, extra = divmod(len(keys), len(members))
    load = dict.fromkeys(members, 0)
    over = 0  # replicas holding base + 1; at most `extra` of them
    out: dict[str, str] = {}
    # The strongest preferences are placed first, so a mapping rarely lands on its second
    # choice; ties break on the names, so every replica computes the same result.
    wishes = sorted(
        ((_weight(r, m), m, r) for m in keys for r in members),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    for _, mapping, replica in wishes:
        if mapping in out or load[replica] > base or (load[replica] == base and over >= extra):
            continue
        if load[replica] == base:
            over += 1
        out[mapping] = replica
        load[replica] += 1
    return out


@dataclass
class Plan:
    take: list[str] = field(default_factory=list)  # acquire the Lease, then start polling
    renew: list[str] = field(default_factory=list)  # running and ours: renew the Lease
    drop: list[str] = field(default_factory=list)  # stop polling, then release the Lease
    wait: list[str] = field(default_factory=list)  # ours by assignment, still held elsewhere


def plan(
    me: str,
    replicas: Sequence[str],
    mappings: Iterable[str],
    leases: Mapping[str, LeaseView],
    running: Iterable[str],
    now: float,
) -> Plan:
    """One replica's moves this round. `running`: the mappings it polls now."""
    keys = set(mappings)
    members = set(replicas) | {me}  # a replica counts itself even before its presence shows
    wanted = {m for m, owner in assign(members, keys).items() if owner == me}
    active = set(running)
    out = Plan()
    for mapping in sorted(active):
        if mapping not in keys or mapping not in wanted:
            out.drop.append(mapping)
            continue
        lease = leases.get(mapping)
        if lease is not None and lease.held_by_other(me, now):
            out.drop.append(mapping)  # someone took it (our renewals failed): stop at once
        else:
            out.renew.append(mapping)
    for mapping in sorted(wanted - active):
        lease = leases.get(mapping)
        if lease is None or not lease.held_by_other(me, now):
            out.take.append(mapping)
        else:
            out.wait.append(mapping)
    return out
