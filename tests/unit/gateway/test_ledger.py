"""The shared ledger's pure logic: fair splits, plans, and a state machine of replicas racing to
write one record (grants, releases, replica loss, rebalancing) that never over-admits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kubelambda.gateway.ledger.allot import Record, fair_split, plan, release_all
from kubelambda.gateway.ledger.share import ReplicaShare

B = "fn/f"


@given(
    st.integers(0, 50),
    st.dictionaries(st.sampled_from("abcd"), st.integers(0, 60)),
    st.sets(st.sampled_from("abcd"), min_size=1),
)
def test_fair_split_gives_out_exactly_the_capacity(
    capacity: int, wants: dict[str, int], live: set[str]
) -> None:
    split = fair_split(capacity, wants, live)
    assert set(split) == live
    assert sum(split.values()) == capacity
    # Max-min fair: a replica gets less than it wants only if no one gets more than one more.
    for r, n in split.items():
        if n < wants.get(r, 0):
            assert all(m <= n + 1 for m in split.values())


def test_fair_split_follows_demand() -> None:
    assert fair_split(10, {"a": 100}, {"a", "b", "c"}) == {"a": 10, "b": 0, "c": 0}
    assert fair_split(10, {"a": 33, "b": 33, "c": 34}, {"a", "b", "c"}) == {
        "a": 3,
        "b": 3,
        "c": 4,
    }
    # What no one wants is split evenly: idle replicas keep headroom.
    assert fair_split(10, {"a": 2}, {"a", "b", "c"}) == {"a": 5, "b": 3, "c": 2}


def test_growth_waits_for_the_store_and_shrinking_does_not() -> None:
    record = Record({B: {"b": 8}}, {B: {"b": 1}})
    p = plan(record, "a", {B: 10}, {B: 20}, {}, {}, {"a", "b"})
    assert p.hold_now[B] == 0  # nothing stored for a yet
    assert p.hold_after[B] == 2  # only what b has not been given
    assert p.record.given[B] == {"a": 2, "b": 8}
    # b, seeing a's demand, gives back what it does not use, before it writes.
    p2 = plan(p.record, "b", {B: 10}, {B: 1}, {B: 1}, {B: 8}, {"a", "b"})
    assert p2.hold_now[B] == 1 and p2.record.given[B]["b"] == 1


def test_a_dead_replicas_allotment_returns() -> None:
    record = Record({B: {"a": 3, "dead": 7}})
    p = plan(record, "a", {B: 10}, {B: 10}, {B: 3}, {B: 3}, {"a"})
    assert p.record.given[B] == {"a": 10}
    assert release_all(p.record, "a") == Record()


def test_unreadable_records_read_as_empty() -> None:
    assert Record.loads("not json") == Record()
    assert Record.loads('{"given": {"fn/f": {"a": "x", "b": 2}}}') == Record({B: {"b": 2}})
    record = Record({B: {"a": 1}}, {B: {"a": 4}})
    assert Record.loads(record.dumps()) == record


def rounds_to_reach(share: float, replicas: int = 3, capacity: int = 10) -> int:
    """Sync rounds until replica r0, which suddenly gets all the traffic, may use `share` of
    the capacity, starting from an even split with every replica busy."""
    names = [f"r{i}" for i in range(replicas)]
    shares = {n: ReplicaShare(n) for n in names}
    record = Record()
    for _ in range(3):  # settle: everyone wants all of it
        for n in names:
            for _ in range(capacity):
                shares[n].take(B)
            shares[n].begin(record, {B: capacity}, names)
            record = shares[n]._pending.record if shares[n]._pending else record
            shares[n].commit()
            shares[n].busy.clear()
    for round_ in range(1, 50):
        for n in names:
            if n == "r0":
                while shares[n].take(B):
                    pass
                for _ in range(100):
                    shares[n].take(B)  # refused: demand
            p = shares[n].begin(record, {B: capacity}, names)
            record = p.record
            shares[n].commit()
            if n == "r0":
                shares[n].busy.clear()
        if shares["r0"].held.get(B, 0) >= share * capacity:
            return round_
    raise AssertionError("never reached")


def test_traffic_shift_reaches_ninety_percent_in_a_few_rounds() -> None:
    assert rounds_to_reach(0.9) <= 4


class ReplicasRacing(RuleBasedStateMachine):
    """Replicas share one record in a compare-and-set store. A replica reads the record
    (`begin`), admits and releases while its write is in flight, then writes (`commit`), which
    fails if anyone wrote in between. Replicas die (their in-flight calls end with them) and
    new ones join. At no step do the live replicas together use more than a bucket holds, and
    no replica may use more than the stored record gives it."""

    @initialize(
        caps=st.dictionaries(
            st.sampled_from([B, "pool", "pv/f/live"]), st.integers(0, 12), min_size=1
        )
    )
    def setup(self, caps: dict[str, int]) -> None:
        self.caps = caps
        self.record = Record()
        self.version = 0
        self.shares: dict[str, ReplicaShare] = {}
        self.read_at: dict[str, int] = {}
        self.born = 0
        for _ in range(2):
            self._join()

    def _join(self) -> None:
        name = f"r{self.born}"
        self.born += 1
        self.shares[name] = ReplicaShare(name)

    def _pick(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.shares)))

    @precondition(lambda self: len(self.shares) < 4)
    @rule()
    def join(self) -> None:
        self._join()

    @precondition(lambda self: len(self.shares) > 1)
    @rule(data=st.data())
    def die(self, data: st.DataObject) -> None:
        name = self._pick(data)
        del self.shares[name]
        self.read_at.pop(name, None)

    @rule(data=st.data(), n=st.integers(1, 6))
    def take(self, data: st.DataObject, n: int) -> None:
        share = self.shares[self._pick(data)]
        bucket = data.draw(st.sampled_from(sorted(self.caps)))
        for _ in range(n):
            share.take(bucket)

    @rule(data=st.data())
    def put(self, data: st.DataObject) -> None:
        share = self.shares[self._pick(data)]
        busy = [b for b, n in share.busy.items() if n > 0]
        if busy:
            share.put(data.draw(st.sampled_from(sorted(busy))))

    @rule(data=st.data())
    def begin(self, data: st.DataObject) -> None:
        name = self._pick(data)
        if name in self.read_at:
            return
        self.shares[name].begin(self.record, self.caps, set(self.shares))
        self.read_at[name] = self.version

    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        pending = sorted(self.read_at)
        if not pending:
            return
        name = data.draw(st.sampled_from(pending))
        share = self.shares[name]
        read = self.read_at.pop(name)
        if read != self.version or share._pending is None:
            share.abort()  # the precondition failed: someone wrote in between
            return
        self.record = share._pending.record
        self.version += 1
        share.commit()

    @rule(data=st.data())
    def fence(self, data: st.DataObject) -> None:
        name = self._pick(data)
        self.shares[name].fence()
        self.read_at.pop(name, None)

    @invariant()
    def never_over_admits(self) -> None:
        for bucket, cap in self.caps.items():
            assert sum(s.busy[bucket] for s in self.shares.values()) <= cap

    @invariant()
    def uses_only_what_the_store_gave(self) -> None:
        for name, share in self.shares.items():
            for bucket, held in share.held.items():
                assert held <= self.record.given_to(bucket, name)
                assert share.busy[bucket] <= self.record.given_to(bucket, name)

    @invariant()
    def the_record_fits(self) -> None:
        for bucket, cap in self.caps.items():
            assert self.record.total(bucket) <= cap


ReplicasRacing.TestCase.settings = settings(max_examples=150, stateful_step_count=50)
test_replicas_racing = ReplicasRacing.TestCase
