"""Admission: exhaustive examples and property tests of Lambda's concurrency accounting."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kubelambda.gateway.admission import ConcurrencyLedger, Lease, PoolLimits, Throttle
from kubelambda.serving.errors import ACCOUNT_LIMIT, RESERVED_LIMIT


def test_reserved_zero_throttles_everything() -> None:
    ledger = ConcurrencyLedger()
    ledger.configure({"f": 0})
    assert ledger.acquire("f") == Throttle(RESERVED_LIMIT)
    assert ledger.in_flight("f") == 0


def test_reserved_limit_is_exact_and_released() -> None:
    ledger = ConcurrencyLedger()
    ledger.configure({"f": 2})
    a, b = ledger.acquire("f"), ledger.acquire("f")
    assert isinstance(a, Lease) and isinstance(b, Lease)
    assert ledger.acquire("f") == Throttle(RESERVED_LIMIT)
    ledger.release(a)
    assert isinstance(ledger.acquire("f"), Lease)


def test_provisioned_first_then_reserved_remainder() -> None:
    ledger = ConcurrencyLedger()
    ledger.configure({"f": 3}, {("f", "live"): 2})
    kinds = [ledger.acquire("f", "live") for _ in range(4)]
    assert [k.kind if isinstance(k, Lease) else k.reason for k in kinds] == [
        "provisioned",
        "provisioned",
        "reserved",
        RESERVED_LIMIT,
    ]
    # Another qualifier cannot use the provisioned slots, only the standard remainder (3 - 2).
    assert ledger.acquire("f", "1") == Throttle(RESERVED_LIMIT)


def test_unreserved_pool_is_total_minus_reservations() -> None:
    ledger = ConcurrencyLedger(PoolLimits(total=10, unreserved_floor=2))
    assert ledger.configure({"big": 8}) == []
    assert ledger.unreserved_capacity == 2
    leases = [ledger.acquire("a"), ledger.acquire("b")]
    assert all(isinstance(x, Lease) for x in leases)
    assert ledger.acquire("c") == Throttle(ACCOUNT_LIMIT)
    assert isinstance(ledger.acquire("big"), Lease)


def test_reservation_that_breaks_the_floor_is_reported_and_ignored() -> None:
    ledger = ConcurrencyLedger(PoolLimits(total=10, unreserved_floor=5))
    problems = ledger.configure({"a": 4, "b": 4})
    assert len(problems) == 1 and problems[0].startswith("b:")
    assert ledger.reserved("a") == 4 and ledger.reserved("b") is None
    assert ledger.unreserved_capacity == 6


def test_provisioned_of_unreserved_functions_is_taken_from_the_pool() -> None:
    ledger = ConcurrencyLedger(PoolLimits(total=10, unreserved_floor=0))
    ledger.configure({}, {("f", "live"): 4})
    assert ledger.unreserved_capacity == 6


def test_provisioned_above_reservation_is_cut() -> None:
    ledger = ConcurrencyLedger()
    problems = ledger.configure({"f": 2}, {("f", "live"): 5})
    assert problems and ledger.provisioned("f", "live") == 2
    assert ledger.standard_cap("f") == 0


FUNCTIONS = ["a", "b", "c", "d"]
QUALIFIERS = [None, "live", "1"]


class LedgerMachine(RuleBasedStateMachine):
    """Random acquire/release sequences under random limits: limits hold, nothing is refused
    while capacity is free."""

    def __init__(self) -> None:
        super().__init__()
        self.leases: list[Lease] = []

    @initialize(
        total=st.integers(1, 30),
        floor=st.integers(0, 30),
        reserved=st.dictionaries(st.sampled_from(FUNCTIONS), st.integers(0, 12), max_size=3),
        provisioned=st.dictionaries(
            st.tuples(st.sampled_from(FUNCTIONS), st.sampled_from(["live", "1"])),
            st.integers(0, 5),
            max_size=3,
        ),
    )
    def setup(
        self,
        total: int,
        floor: int,
        reserved: dict[str, int],
        provisioned: dict[tuple[str, str], int],
    ) -> None:
        self.ledger = ConcurrencyLedger(PoolLimits(total=total, unreserved_floor=min(floor, total)))
        self.ledger.configure(reserved, provisioned)

    @rule(function=st.sampled_from(FUNCTIONS), qualifier=st.sampled_from(QUALIFIERS))
    def acquire(self, function: str, qualifier: str | None) -> None:
        ledger = self.ledger
        prov_free = qualifier is not None and ledger.provisioned_busy(
            function, qualifier
        ) < ledger.provisioned(function, qualifier)
        cap = ledger.standard_cap(function)
        std_free = (
            ledger.standard_busy(function) < cap
            if cap is not None
            else ledger.unreserved_busy < ledger.unreserved_capacity
        )
        result = ledger.acquire(function, qualifier)
        if isinstance(result, Lease):
            self.leases.append(result)
            assert prov_free or std_free
            assert (result.kind == "provisioned") == prov_free
        else:
            assert not prov_free and not std_free, "refused while capacity was free"
            assert result.reason == (RESERVED_LIMIT if cap is not None else ACCOUNT_LIMIT)

    @precondition(lambda self: bool(self.leases))
    @rule(index=st.integers(0, 10**6))
    def release(self, index: int) -> None:
        self.ledger.release(self.leases.pop(index % len(self.leases)))

    @invariant()
    def limits_hold(self) -> None:
        ledger = self.ledger
        for function in FUNCTIONS:
            reserved = ledger.reserved(function)
            if reserved is not None:
                assert ledger.in_flight(function) <= reserved
            for qualifier in ("live", "1"):
                assert ledger.provisioned_busy(function, qualifier) <= ledger.provisioned(
                    function, qualifier
                )
        assert ledger.unreserved_busy <= ledger.unreserved_capacity
        reserved_total = sum(ledger.reserved(f) or 0 for f in FUNCTIONS)
        unreserved_prov = sum(
            ledger.provisioned(f, q)
            for f in FUNCTIONS
            for q in ("live", "1")
            if ledger.reserved(f) is None
        )
        room = ledger.limits.total - ledger.limits.unreserved_floor
        assert reserved_total + unreserved_prov <= room
        assert ledger.in_flight() == len(self.leases)
        assert ledger.in_flight() <= ledger.limits.total


LedgerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestLedger = LedgerMachine.TestCase


@given(st.integers(0, 50), st.integers(1, 100))
def test_burst_against_reservation_admits_exactly_the_limit(reserved: int, burst: int) -> None:
    ledger = ConcurrencyLedger()
    ledger.configure({"f": min(reserved, 900)})
    admitted = [r for r in (ledger.acquire("f") for _ in range(burst)) if isinstance(r, Lease)]
    assert len(admitted) == min(burst, reserved, 900)
