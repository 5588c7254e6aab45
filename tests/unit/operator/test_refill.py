"""The refill gate: a short pool with free pods left waits a bounded moment; others never wait."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubelambda.operator.refill import RefillGate

GENERIC = ("generic", "default", "python3.12")
PROVISIONED = ("provisioned", "rev1")


def test_a_short_pool_with_free_pods_waits_the_delay_then_refills_everything() -> None:
    gate = RefillGate(delay=0.5)
    assert gate.allow(GENERIC, 1, 2, 100.0) == 0
    assert gate.wake_at == 100.5
    assert gate.allow(GENERIC, 2, 1, 100.3) == 0  # a second claim inside the moment
    assert gate.wake_at == 100.5, "the wait counts from the first shortfall, not the latest"
    assert gate.allow(GENERIC, 2, 1, 100.5) == 2
    assert gate.wake_at is None


def test_a_pool_below_its_floor_is_refilled_at_once() -> None:
    gate = RefillGate(delay=0.5)
    assert gate.allow(GENERIC, 3, 0, 100.0) == 3  # empty: the next caller would wait
    gate = RefillGate(delay=0.5, floor=2)
    assert gate.allow(GENERIC, 1, 1, 100.0) == 1
    assert gate.allow(GENERIC, 1, 2, 100.0) == 0


def test_a_burst_that_drains_the_pool_ends_the_wait() -> None:
    gate = RefillGate(delay=0.5)
    assert gate.allow(GENERIC, 1, 2, 100.0) == 0
    assert gate.allow(GENERIC, 3, 0, 100.1) == 3
    assert gate.wake_at is None


def test_provisioned_pools_and_a_zero_delay_never_wait() -> None:
    assert RefillGate(delay=0.5).allow(PROVISIONED, 1, 3, 100.0) == 1
    assert RefillGate(delay=0.0).allow(GENERIC, 1, 3, 100.0) == 1


def test_a_pool_full_again_or_gone_is_forgotten() -> None:
    gate = RefillGate(delay=0.5)
    gate.allow(GENERIC, 1, 2, 100.0)
    assert gate.allow(GENERIC, 0, 3, 100.2) == 0 and gate.wake_at is None
    gate.allow(GENERIC, 1, 2, 101.0)
    assert gate.wake_at == 101.5, "a new shortfall starts a new wait"
    gate.forget({PROVISIONED})
    assert gate.wake_at is None


@given(
    st.floats(0.01, 5.0),
    st.lists(st.tuples(st.floats(0.0, 0.5), st.integers(0, 5), st.integers(0, 5)), max_size=40),
)
def test_no_pool_waits_longer_than_the_delay_from_its_first_shortfall(
    delay: float, steps: list[tuple[float, int, int]]
) -> None:
    """Whatever the sequence of passes, a pool short since `t` is refilled by `t + delay` (the
    keeper wakes at `wake_at`), and is never held back with fewer free pods than the floor."""
    gate = RefillGate(delay=delay)
    now, short_since = 0.0, None
    for gap, missing, free in steps:
        due = gate.wake_at
        now += gap
        if due is not None:
            now = min(now, due)  # the keeper is woken then at the latest
        allowed = gate.allow(GENERIC, missing, free, now)
        assert allowed in (0, missing)
        if missing and free < 1:
            assert allowed == missing
        if allowed == 0 and missing:
            short_since = now if short_since is None else short_since
            assert now - short_since < delay
        else:
            short_since = None
