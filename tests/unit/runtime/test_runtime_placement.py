"""Dev mode's CPU placement: a lone invocation beside the gateway, concurrent ones apart."""

from __future__ import annotations

import pytest

from kubelambda.runtime.placement import CpuPlacement, place_for, split


def test_only_a_lone_invocation_runs_beside_the_gateway() -> None:
    assert place_for(1) == "home"
    assert [place_for(n) for n in (2, 3, 64)] == ["spread"] * 3


@pytest.mark.parametrize(
    ("allowed", "halves"),
    [
        ({0, 1}, ({1}, {0})),
        ({0, 1, 2, 3}, ({3}, {0, 1, 2})),
        ({2, 5}, ({5}, {2})),  # a cpuset that skips CPUs
        ({0}, None),  # one CPU: nothing to split, nothing pinned
        (set(), None),
    ],
)
def test_the_gateway_takes_the_highest_cpu_and_the_runtimes_spread_over_the_rest(
    allowed: set[int], halves: tuple[set[int], set[int]] | None
) -> None:
    assert split(frozenset(allowed)) == halves


class Recorder:
    def __init__(self, refuse: type[OSError] | None = None) -> None:
        self.calls: list[tuple[int, frozenset[int]]] = []
        self.refuse = refuse

    def __call__(self, pid: int, cpus: frozenset[int]) -> None:
        if self.refuse is not None:
            raise self.refuse()
        self.calls.append((pid, cpus))


def _placement(recorder: Recorder) -> CpuPlacement:
    return CpuPlacement(frozenset({1}), frozenset({0}), recorder)


def test_a_new_runtime_starts_up_off_the_gateways_cpu_and_is_not_counted() -> None:
    moves = Recorder()
    placement = _placement(moves)
    assert placement.started(100) == "spread"
    assert moves.calls == [(100, frozenset({0}))] and placement.running == 0


def test_a_runtime_is_moved_only_when_its_place_changes() -> None:
    moves = Recorder()
    placement = _placement(moves)
    place = placement.enter(100, None)  # alone: beside the gateway
    assert place == "home" and moves.calls == [(100, frozenset({1}))]
    placement.leave()
    assert placement.enter(100, place) == "home"  # still alone: no call
    assert moves.calls == [(100, frozenset({1}))]
    # A second invocation while the first runs goes to the other CPUs.
    assert placement.enter(200, None) == "spread"
    assert moves.calls[-1] == (200, frozenset({0}))
    placement.leave()
    placement.leave()
    assert placement.running == 0


def test_concurrent_invocations_all_run_apart_until_one_is_alone_again() -> None:
    moves = Recorder()
    placement = _placement(moves)
    places = [placement.enter(pid, "home") for pid in (1, 2, 3)]
    assert places == ["home", "spread", "spread"]  # the first was alone when it started
    for _ in places:
        placement.leave()
    assert placement.enter(2, "spread") == "home"  # alone again: back beside the gateway
    assert moves.calls[-1] == (2, frozenset({1}))


@pytest.mark.parametrize("refusal", [ProcessLookupError, PermissionError])
def test_a_runtime_that_cannot_be_moved_keeps_running_and_is_counted(
    refusal: type[OSError],
) -> None:
    placement = _placement(Recorder(refuse=refusal))
    assert placement.enter(100, None) is None  # unknown place: tried again next time
    assert placement.running == 1
    placement.leave()
    assert placement.running == 0
