"""Stream batches: checkpoints, partial failures, bisect, bounded retries and record age."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from kubelambda.sources.responses import SUCCESS, Outcome, failure
from kubelambda.sources.streams import StreamBatch, StreamPolicy


@dataclass(frozen=True)
class Rec:
    seq: int
    at: float = 100.0


def batch(n: int, policy: StreamPolicy, **kw: float) -> StreamBatch[Rec]:
    records = [Rec(i, kw.get("at", 100.0)) for i in range(n)]
    return StreamBatch(records, policy, identify=lambda r: str(r.seq), arrived=lambda r: r.at)


def seqs(records: list[Rec]) -> list[int]:
    return [r.seq for r in records]


def partial(*ids: int) -> Outcome:
    return Outcome("partial", tuple(str(i) for i in ids))


def test_success_settles_everything() -> None:
    b = batch(4, StreamPolicy())
    assert seqs(b.next(0)) == [0, 1, 2, 3]
    b.settle(SUCCESS)
    assert b.finished and b.checkpoint() == 4 and b.next(0) == []


def test_partial_failure_moves_the_checkpoint_to_the_first_failed_item() -> None:
    b = batch(5, StreamPolicy(max_retries=5))
    b.next(0)
    b.settle(partial(3, 2))
    assert b.checkpoint() == 2
    assert seqs(b.next(0)) == [2, 3, 4]  # from the first failed one, in order
    b.settle(SUCCESS)
    assert b.checkpoint() == 5 and b.given_up == []


def test_bisect_splits_and_does_not_count_as_retries() -> None:
    b = batch(8, StreamPolicy(bisect=True, max_retries=0))
    sent = []
    poison = 5
    while not b.finished:
        records = b.next(0)
        sent.append(seqs(records))
        b.settle(failure("boom") if poison in seqs(records) else SUCCESS)
    assert sent == [[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4], [5], [6, 7]]
    assert [seqs(g.records) for g in b.given_up] == [[5]]
    assert b.given_up[0].condition == "RetryAttemptsExhausted"
    assert b.checkpoint() == 8


def test_bounded_retries_give_up_the_segment_after_max_retries() -> None:
    b = batch(3, StreamPolicy(max_retries=2))
    invokes = 0
    while not b.finished:
        b.next(0)
        invokes += 1
        b.settle(failure("down"))
    assert invokes == 3  # the first try and two retries
    assert b.given_up[0].attempts == 3 and seqs(b.given_up[0].records) == [0, 1, 2]


def test_unbounded_retries_keep_the_partition_at_the_failing_batch() -> None:
    b = batch(2, StreamPolicy(max_retries=-1))
    for _ in range(50):
        assert seqs(b.next(0)) == [0, 1]
        b.settle(failure("down"))
    assert b.checkpoint() == 0 and not b.finished


def test_old_records_are_given_up_before_invoking() -> None:
    records = [Rec(0, at=0.0), Rec(1, at=0.0), Rec(2, at=50.0)]
    b = StreamBatch(
        records, StreamPolicy(max_age=60), identify=lambda r: str(r.seq), arrived=lambda r: r.at
    )
    assert seqs(b.next(now=61)) == [2]
    assert [(seqs(g.records), g.condition) for g in b.given_up] == [([0, 1], "RecordAgeExceeded")]
    b.settle(SUCCESS)
    assert b.checkpoint() == 3


def test_a_batch_of_only_old_records_finishes_without_an_invoke() -> None:
    b = batch(2, StreamPolicy(max_age=60), at=0.0)
    assert b.next(now=1000) == [] and b.finished and b.invokes == 0


@settings(max_examples=200)
@given(
    st.integers(1, 40),
    st.sets(st.integers(0, 39)),
    st.booleans(),
    st.integers(0, 3),
    st.booleans(),
)
def test_every_record_is_settled_once_and_good_ones_are_never_given_up(
    n: int, poison: set[int], bisect: bool, retries: int, report: bool
) -> None:
    """With bounded retries a batch always finishes; with bisect only poison is given up."""
    b = batch(n, StreamPolicy(bisect=bisect, max_retries=retries))
    checkpoints = [0]
    steps = 0
    while not b.finished:
        steps += 1
        assert steps < 10_000
        records = b.next(0)
        bad = [r.seq for r in records if r.seq in poison]
        if not bad:
            b.settle(SUCCESS)
        elif report:
            b.settle(partial(*bad))
        else:
            b.settle(failure("poison"))
        checkpoints.append(b.checkpoint())
    assert checkpoints == sorted(checkpoints)  # the checkpoint never moves back
    assert b.checkpoint() == n
    given_up = [r.seq for g in b.given_up for r in g.records]
    assert len(given_up) == len(set(given_up))
    assert set(given_up) >= poison & set(range(n))
    if bisect and not report:
        assert set(given_up) == poison & set(range(n))
