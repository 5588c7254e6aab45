"""Batches go out when full, when the window ends, or before passing 6 MB; nothing is lost."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelambda.sources.batching import ENVELOPE, Batcher, BatchLimits


def test_full_batch_goes_out_at_batch_size() -> None:
    batcher: Batcher[int] = Batcher(BatchLimits(size=3, window=10))
    assert batcher.add(1, 10, now=0) == []
    assert batcher.add(2, 10, now=0) == []
    assert batcher.add(3, 10, now=0) == [[1, 2, 3]]
    assert len(batcher) == 0 and batcher.deadline() is None


def test_window_counts_from_the_first_record() -> None:
    batcher: Batcher[str] = Batcher(BatchLimits(size=100, window=2))
    batcher.add("a", 1, now=10.0)
    batcher.add("b", 1, now=11.5)
    assert batcher.deadline() == 12.0
    assert not batcher.due(11.99)
    assert batcher.due(12.0)
    assert batcher.flush() == ["a", "b"]
    assert not batcher.due(100)


def test_window_zero_is_due_at_once() -> None:
    batcher: Batcher[str] = Batcher(BatchLimits(size=10, window=0))
    assert not batcher.due(5)
    batcher.add("a", 1, now=5)
    assert batcher.due(5)


def test_payload_limit_sends_before_the_record_that_would_pass_it() -> None:
    limits = BatchLimits(size=100, window=60, payload=ENVELOPE + 100)
    batcher: Batcher[str] = Batcher(limits)
    assert batcher.add("a", 60, now=0) == []
    assert batcher.add("b", 60, now=0) == [["a"]]
    assert batcher.flush() == ["b"]


def test_a_record_over_the_limit_goes_alone() -> None:
    batcher: Batcher[str] = Batcher(BatchLimits(size=100, window=60, payload=ENVELOPE + 100))
    batcher.add("small", 10, now=0)
    assert batcher.add("huge", 500, now=0) == [["small"], ["huge"]]


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        BatchLimits(size=0, window=0)


@given(
    st.integers(1, 20),
    st.integers(ENVELOPE + 1, ENVELOPE + 5000),
    st.lists(st.integers(1, 3000), max_size=200),
)
def test_every_record_goes_out_once_in_order_within_limits(
    size: int, payload: int, sizes: list[int]
) -> None:
    limits = BatchLimits(size=size, window=1, payload=payload)
    batcher: Batcher[int] = Batcher(limits)
    out: list[list[int]] = []
    for i, n in enumerate(sizes):
        out += batcher.add(i, n, now=i * 0.1)
    out.append(batcher.flush())
    out = [b for b in out if b]
    assert [i for b in out for i in b] == list(range(len(sizes)))
    for batch in out:
        assert 1 <= len(batch) <= size
        total = ENVELOPE + sum(sizes[i] for i in batch)
        assert total <= payload or len(batch) == 1
