"""The shared allotment record and how one replica changes it, as pure functions (no I/O).

Each capacity admission enforces (a function's reservation, a provisioned qualifier, a
namespace's unreserved pool) is a *bucket*. The record, one per namespace, says for each bucket
how many units each gateway replica has been *given* and how many it *wants* (its recent
demand). It is exact because of three rules:

1. a write keeps `sum(given) <= capacity` and changes only the writer's own entries, plus the
   entries of replicas whose heartbeat has expired; writes are compare-and-set on one object,
   so no two plans ever both apply to the same state;
2. a replica *grows* its allotment only after the record with the larger number is stored, and
   *shrinks* what it may use before it writes the smaller number; the record never drops below
   what it is using (those calls still run: the rest comes back as they finish); so what it
   uses is always at most what the stored record gives it;
3. a replica whose own heartbeat it cannot renew stops admitting before the others may take
   its allotment (`ReplicaShare.fence`).

Rebalancing toward demand: every replica computes the same max-min fair split of a bucket over
the live replicas' wants (the rest split evenly, so idle replicas keep headroom) and moves its
own entry toward its target: down at once (to what it is using), up as far as free units allow.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Replica = str
Bucket = str
Table = dict[Bucket, dict[Replica, int]]

UNRESERVED = "pool"


def reserved_bucket(function: str) -> Bucket:
    return f"fn/{function}"


def provisioned_bucket(function: str, qualifier: str) -> Bucket:
    return f"pv/{function}/{qualifier}"


@dataclass(frozen=True)
class Record:
    """One namespace's shared record: units given to, and wanted by, each replica per bucket."""

    given: Table = field(default_factory=dict)
    wants: Table = field(default_factory=dict)

    def given_to(self, bucket: Bucket, replica: Replica) -> int:
        return self.given.get(bucket, {}).get(replica, 0)

    def total(self, bucket: Bucket) -> int:
        return sum(self.given.get(bucket, {}).values())

    def replicas(self) -> set[Replica]:
        return {r for table in (self.given, self.wants) for row in table.values() for r in row}

    def dumps(self) -> str:
        return json.dumps({"given": self.given, "wants": self.wants}, sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> Record:
        """The record in an annotation; anything unreadable reads as empty, which is safe: a
        replica then gives itself nothing until it has written a record of its own."""
        try:
            raw = json.loads(text) if text else {}
        except ValueError:
            raw = {}
        return cls(_table(raw, "given"), _table(raw, "wants"))


def _table(raw: object, key: str) -> Table:
    table: Table = {}
    section = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(section, dict):
        return table
    for bucket, row in section.items():
        if isinstance(row, dict):
            kept = {str(r): n for r, n in row.items() if isinstance(n, int) and n > 0}
            if kept:
                table[str(bucket)] = kept
    return table


def fair_split(
    capacity: int, wants: Mapping[Replica, int], live: Iterable[Replica]
) -> dict[Replica, int]:
    """Max-min fair shares of `capacity` over the live replicas' wants; what no one wants is
    split evenly (earlier names take the remainder). Every replica computes the same split."""
    names = sorted(set(live))
    share = dict.fromkeys(names, 0)
    if not names or capacity <= 0:
        return share
    remaining = capacity
    by_want = sorted(names, key=lambda r: (wants.get(r, 0), r))
    for i, replica in enumerate(by_want):
        give = min(max(wants.get(replica, 0), 0), remaining // (len(by_want) - i))
        share[replica] = give
        remaining -= give
    # Units the floor division left over go first to replicas that still want more.
    hungry = [r for r in names if share[r] < wants.get(r, 0)]
    for replica in hungry:
        if remaining == 0:
            break
        share[replica] += 1
        remaining -= 1
    each, extra = divmod(remaining, len(names))
    for i, replica in enumerate(names):
        share[replica] += each + (1 if i < extra else 0)
    return share


@dataclass(frozen=True)
class Plan:
    """A replica's next write: `record` to store; use at most `hold_now` meanwhile, and
    `hold_after` once the store has accepted `record`."""

    record: Record
    hold_now: dict[Bucket, int]
    hold_after: dict[Bucket, int]

    @property
    def changes(self) -> bool:
        return self.hold_now != self.hold_after


def plan(
    record: Record,
    me: Replica,
    capacities: Mapping[Bucket, int],
    wants: Mapping[Bucket, int],
    busy: Mapping[Bucket, int],
    held: Mapping[Bucket, int],
    live: Iterable[Replica],
) -> Plan:
    """The record `me` writes next, given the stored `record`, this replica's view of the
    buckets' capacities, its demand, its use, what it may use now and the live replicas
    (itself included). Entries of replicas not live are dropped (their allotment returns)."""
    alive = set(live) | {me}
    given: Table = {}
    wanted: Table = {}
    for bucket, row in record.given.items():
        kept = {r: n for r, n in row.items() if r in alive and r != me}
        if kept:
            given[bucket] = kept
    for bucket, row in record.wants.items():
        kept = {r: n for r, n in row.items() if r in alive and r != me}
        if kept:
            wanted[bucket] = kept
    hold_now: dict[Bucket, int] = {}
    hold_after: dict[Bucket, int] = {}
    buckets = set(capacities) | set(busy) | set(held) | set(record.given)
    for bucket in sorted(buckets):
        mine = record.given_to(bucket, me)
        capacity = capacities.get(bucket, 0)
        want = wants.get(bucket, 0) if bucket in capacities else 0
        if want > 0:
            wanted.setdefault(bucket, {})[me] = want
        others = sum(given.get(bucket, {}).values())
        target = fair_split(capacity, wanted.get(bucket, {}), alive)[me]
        in_use = busy.get(bucket, 0)
        if target < mine:
            # Down: the record keeps what is in use (those calls still run), but no new call
            # is admitted above the target, so the rest returns as calls finish.
            new, limit = max(target, in_use), target
        else:
            # Up: only into units nobody else has been given.
            new = limit = max(mine, min(target, capacity - others))
        if new > 0:
            given.setdefault(bucket, {})[me] = new
        now = min(held.get(bucket, 0), mine, limit)
        if bucket in capacities or now or new:
            hold_now[bucket] = now
            hold_after[bucket] = limit
    return Plan(Record(given, wanted), hold_now, hold_after)


def release_all(record: Record, me: Replica) -> Record:
    """The record without `me` (a replica that stops gives everything back)."""
    given = {b: {r: n for r, n in row.items() if r != me} for b, row in record.given.items()}
    wants = {b: {r: n for r, n in row.items() if r != me} for b, row in record.wants.items()}
    return Record({b: r for b, r in given.items() if r}, {b: r for b, r in wants.items() if r})


def bucket_of(kind: str, function: str, qualifier: str | None) -> Bucket:
    """The bucket an admission lease of `kind` counts against."""
    if kind == "provisioned" and qualifier is not None:
        return provisioned_bucket(function, qualifier)
    return reserved_bucket(function) if kind == "reserved" else UNRESERVED


def capacities_of(
    in_force: tuple[Mapping[str, int], Mapping[tuple[str, str], int], int],
) -> dict[Bucket, int]:
    """One namespace's buckets and capacities, from `ConcurrencyLedger.in_force()`."""
    standard, provisioned, unreserved = in_force
    caps = {reserved_bucket(f): n for f, n in standard.items()}
    caps.update({provisioned_bucket(f, q): n for (f, q), n in provisioned.items()})
    caps[UNRESERVED] = unreserved
    return caps
