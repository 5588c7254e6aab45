"""Leader election decisions (operator/leadership.py): expiry by the candidate's own clock,
the record written when taking or renewing, and the release at a clean stop."""

from __future__ import annotations

from typing import Any

import pytest

from kubelambda.operator.leadership import (
    LeaseTimes,
    claimed,
    may_take,
    observe,
    released,
)

TIMES = LeaseTimes(duration=10, renew_deadline=7, retry=2)


def lease(holder: str, renewed: str, transitions: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"name": "op", "namespace": "sys", "resourceVersion": "41"},
        "spec": {
            "holderIdentity": holder,
            "renewTime": renewed,
            "leaseDurationSeconds": 10,
            "leaseTransitions": transitions,
            "acquireTime": "2026-01-01T00:00:00.000000Z",
        },
    }


def test_a_held_lease_is_free_only_after_its_record_stays_unchanged_for_its_duration() -> None:
    first = observe(lease("a", "t1"), 100.0, None)
    assert not may_take(first, "b", 100.0)
    assert not may_take(first, "b", 109.9)
    # The holder renewed meanwhile: the clock starts again from when b saw the new record.
    renewed = observe(lease("a", "t2"), 105.0, first)
    assert renewed.since == 105.0
    assert not may_take(renewed, "b", 114.0)
    same = observe(lease("a", "t2"), 114.0, renewed)
    assert same.since == 105.0
    assert may_take(same, "b", 115.0)


def test_the_holder_and_an_empty_or_missing_lease_may_always_be_taken() -> None:
    assert may_take(observe(lease("a", "t1"), 0.0, None), "a", 0.0)
    assert may_take(observe(lease("", "t1"), 0.0, None), "b", 0.0)
    assert may_take(observe(None, 0.0, None), "b", 0.0)


def test_taking_a_lease_counts_a_transition_and_keeps_the_resource_version() -> None:
    taken = claimed(
        lease("a", "t1", 2), namespace="sys", name="op", identity="b", times=TIMES, wall=0.5
    )
    assert taken["metadata"]["resourceVersion"] == "41"
    spec = taken["spec"]
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 3
    assert spec["acquireTime"] == spec["renewTime"] == "1970-01-01T00:00:00.500000Z"
    assert spec["leaseDurationSeconds"] == 10
    # Renewing keeps the acquire time and the transitions.
    again = claimed(taken, namespace="sys", name="op", identity="b", times=TIMES, wall=2.0)
    assert again["spec"]["acquireTime"] == "1970-01-01T00:00:00.500000Z"
    assert again["spec"]["renewTime"] == "1970-01-01T00:00:02.000000Z"
    assert again["spec"]["leaseTransitions"] == 3


def test_a_new_lease_names_itself_and_starts_without_transitions() -> None:
    new = claimed(None, namespace="sys", name="op", identity="a", times=TIMES, wall=0.0)
    assert new["metadata"] == {"name": "op", "namespace": "sys"}
    assert new["kind"] == "Lease" and new["spec"]["leaseTransitions"] == 0


def test_a_released_lease_has_no_holder_and_lapses_at_once() -> None:
    gone = released(lease("a", "t1"), 3.0)
    assert gone["spec"]["holderIdentity"] == "" and gone["spec"]["leaseDurationSeconds"] == 1
    assert may_take(observe(gone, 0.0, None), "b", 0.0)


def test_lease_times_must_leave_the_leader_time_to_stop_before_a_standby_takes_over() -> None:
    with pytest.raises(ValueError):
        LeaseTimes(duration=10, renew_deadline=10, retry=2)
    with pytest.raises(ValueError):
        LeaseTimes(duration=10, renew_deadline=7, retry=8)
