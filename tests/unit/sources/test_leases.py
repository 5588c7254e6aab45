"""Lease ownership: fair shares, one owner per mapping, and a dead replica's mappings moving."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubelambda.sources.leases import LeaseView, alive, assign, plan

names = st.lists(st.text("abcdefgh", min_size=1, max_size=5), unique=True)


@given(names.filter(bool), names)
def test_assignment_is_fair_complete_and_order_free(replicas: list[str], maps: list[str]) -> None:
    out = assign(replicas, maps)
    assert set(out) == set(maps)
    counts = [list(out.values()).count(r) for r in replicas]
    assert max(counts) - min(counts) <= 1
    assert assign(list(reversed(replicas)), list(reversed(maps))) == out


def test_losing_a_replica_moves_only_its_mappings_mostly() -> None:
    maps = [f"default/m{i}" for i in range(30)]
    before = assign(["a", "b", "c"], maps)
    after = assign(["a", "b"], maps)
    moved = [m for m in maps if before[m] != after[m]]
    assert all(before[m] == "c" or m in moved for m in moved)
    assert sum(1 for m in maps if before[m] == "c") <= len(moved) <= 15


def test_alive_are_the_unexpired_presences() -> None:
    presence = {
        "a": LeaseView("a", renewed=100, duration=10),
        "b": LeaseView("b", renewed=80, duration=10),
    }
    assert alive(presence, now=105) == ["a"]


def test_plan_takes_free_leases_and_waits_for_held_ones() -> None:
    maps = ["m1", "m2", "m3", "m4"]
    wanted = [m for m, r in assign(["a", "b"], maps).items() if r == "a"]
    held = LeaseView("b", renewed=100, duration=15)
    leases = {wanted[0]: held}
    p = plan("a", ["a", "b"], maps, leases, running=[], now=105)
    assert p.wait == [wanted[0]]
    assert p.take == sorted(wanted[1:])
    # once b's lease on it has expired (b died), a takes it
    p = plan("a", ["a"], maps, leases, running=[], now=116)
    assert wanted[0] in p.take and sorted(p.take) == sorted(maps)


def test_plan_drops_what_is_assigned_elsewhere_or_deleted() -> None:
    maps = ["m1", "m2"]
    mine = {m for m, r in assign(["a", "b"], maps).items() if r == "a"}
    p = plan("a", ["a", "b"], maps, {}, running=["m1", "m2", "gone"], now=0)
    assert set(p.renew) == mine
    assert set(p.drop) == {"gone"} | (set(maps) - mine)


def test_plan_stops_at_once_when_another_holder_took_the_lease() -> None:
    p = plan("a", ["a"], ["m1"], {"m1": LeaseView("z", 100, 15)}, running=["m1"], now=101)
    assert p.drop == ["m1"] and p.renew == []


@given(st.integers(1, 5), st.integers(0, 25), st.integers(0, 2**16))
def test_every_mapping_has_at_most_one_taker(n: int, m: int, seed: int) -> None:
    replicas = [f"r{i}" for i in range(n)]
    maps = [f"m{seed}-{i}" for i in range(m)]
    takers: dict[str, list[str]] = {}
    for r in replicas:
        for mapping in plan(r, replicas, maps, {}, running=[], now=0).take:
            takers.setdefault(mapping, []).append(r)
    assert set(takers) == set(maps)
    assert all(len(v) == 1 for v in takers.values())


# --- the Lease documents the cluster edge writes (sources.cluster, pure helpers) --------------


def test_a_lease_body_keeps_the_acquire_time_while_the_holder_stays() -> None:
    from kubelambda.sources.cluster import lease_body, lease_role, lease_view

    first = lease_body("l", "ns", "mapping", "a", 100.0, None, 10)
    assert "resourceVersion" not in first["metadata"]
    first["metadata"]["resourceVersion"] = "7"
    renewed = lease_body("l", "ns", "mapping", "a", 105.5, first, 10)
    assert renewed["metadata"]["resourceVersion"] == "7"  # the precondition
    assert renewed["spec"]["acquireTime"] == first["spec"]["acquireTime"]
    view = lease_view(renewed)
    assert (view.holder, view.renewed, view.duration) == ("a", 105.5, 10.0)
    assert lease_role(renewed) == "mapping"
    taken = lease_body("l", "ns", "mapping", "b", 120.0, renewed, 10)
    assert lease_view(taken).holder == "b"
    assert taken["spec"]["acquireTime"] == taken["spec"]["renewTime"]


def test_a_released_lease_has_no_holder_and_counts_as_expired() -> None:
    from kubelambda.sources.cluster import lease_body, lease_view

    held = lease_body("l", "ns", "mapping", "a", 100.0, None, 10)
    released = lease_body("l", "ns", "mapping", None, 101.0, held, 10)
    assert released["spec"] == {"leaseDurationSeconds": 10}  # the API refuses a 0 duration
    assert lease_view(released).expired(101.0)
