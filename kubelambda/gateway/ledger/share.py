"""One replica's side of one namespace's shared record: what it may use, uses and wants (pure).

The hot path is `take`/`put`: a comparison and an increment, never a wait on the store. The
sync loop (`kubelambda.kube.ledgerstore`) calls `begin` with the stored record, writes the
plan's record with a resourceVersion precondition, then `commit` (stored) or `abort` (lost the
race: keep the lower `hold_now`, try again next round).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from kubelambda.gateway.ledger.allot import Bucket, Plan, Record, Replica, plan


class ReplicaShare:
    def __init__(self, me: Replica) -> None:
        self.me = me
        self.held: dict[Bucket, int] = {}  # never more than the stored record gives `me`
        self.busy: Counter[Bucket] = Counter()
        self.fenced = True  # nothing may be used before the first stored record
        self._peak: Counter[Bucket] = Counter()  # most in use during this round
        self._refused: Counter[Bucket] = Counter()  # refusals during this round
        self._last_wants: dict[Bucket, int] = {}
        self._pending: Plan | None = None

    # The hot path.

    def take(self, bucket: Bucket) -> bool:
        in_use = self.busy[bucket]
        if in_use >= self.held.get(bucket, 0):
            self._refused[bucket] += 1
            return False
        self.busy[bucket] = in_use + 1
        if in_use + 1 > self._peak[bucket]:
            self._peak[bucket] = in_use + 1
        return True

    def put(self, bucket: Bucket) -> None:
        self.busy[bucket] -= 1

    def refused(self, bucket: Bucket) -> None:
        """A call refused before it reached this bucket still counts as demand for it."""
        self._refused[bucket] += 1

    # The sync round.

    def wants(self) -> dict[Bucket, int]:
        """Demand: the most in use plus the refusals, over this round and the last (so one
        quiet round does not give a busy replica's share away)."""
        now = {b: self._peak[b] + self._refused[b] for b in set(self._peak) | set(self._refused)}
        merged = {
            b: max(now.get(b, 0), self._last_wants.get(b, 0))
            for b in set(now) | set(self._last_wants)
        }
        return {b: n for b, n in merged.items() if n > 0}

    def begin(
        self, record: Record, capacities: Mapping[Bucket, int], live: Iterable[Replica]
    ) -> Plan:
        """Plan the next write and lower what may be used to the plan's `hold_now` at once."""
        wants = self.wants()
        self._last_wants = {
            b: self._peak[b] + self._refused[b] for b in set(self._peak) | set(self._refused)
        }
        self._peak = Counter({b: n for b, n in self.busy.items() if n > 0})
        self._refused = Counter()
        held = {} if self.fenced else self.held
        result = plan(record, self.me, capacities, wants, self.busy, held, live)
        self.held = dict(result.hold_now)
        self._pending = result
        return result

    def commit(self) -> None:
        """The plan's record is stored: use what it gives (unless fenced meanwhile)."""
        if self._pending is None:
            return
        self.held = dict(self._pending.hold_after)
        self.fenced = False
        self._pending = None

    def abort(self) -> None:
        """The write lost the race (or failed): keep the lower `hold_now`."""
        self._pending = None

    def fence(self) -> None:
        """Our heartbeat may have expired: admit nothing until a record is stored again."""
        self.fenced = True
        self.held = {}
        self._pending = None

    def in_use(self) -> int:
        return sum(self.busy.values())
