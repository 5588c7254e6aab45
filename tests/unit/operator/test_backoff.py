"""Failed pod creates (operator/backoff.py): the reason named from the apiserver's refusal, and
the per-pool exponential backoff, capped, cleared by a success."""

from __future__ import annotations

import pytest

from kubelambda.operator.backoff import CreateBackoff, pool_event, refusal_reason

POOL = ("function", "ns", "big", "python3.12/1024/512")


@pytest.mark.parametrize(
    ("status", "message", "reason"),
    [
        (
            403,
            'pods "a" is forbidden: exceeded quota: q, requested: pods=1, limited: pods=0',
            "QuotaExceeded",
        ),
        (403, 'pods "a" is forbidden: failed quota: q: must specify limits.cpu', "QuotaExceeded"),
        (403, 'pods "a" is forbidden: violates PodSecurity "restricted:latest": x', "PodSecurity"),
        (
            403,
            'pods "a" is forbidden: maximum memory usage per Container is 256Mi, but',
            "LimitRange",
        ),
        (403, "something else", "Forbidden"),
        (422, "Pod is invalid", "Invalid"),
        (500, "etcd", "CreateFailed"),
    ],
)
def test_the_reason_names_the_refusal(status: int, message: str, reason: str) -> None:
    assert refusal_reason(status, message) == reason


def test_a_refused_pool_backs_off_exponentially_up_to_the_cap() -> None:
    backoff = CreateBackoff(base=1, cap=8)
    now = 100.0
    delays = []
    for _ in range(6):
        assert not backoff.blocked(POOL, now)
        failure, new = backoff.failed(POOL, now, "QuotaExceeded", "m")
        assert new
        delays.append(failure.until - now)
        assert backoff.blocked(POOL, now + delays[-1] - 0.01)
        assert not backoff.blocked(("generic", "ns", "python3.12"), now), "per pool"
        now = failure.until
    assert delays == [1, 2, 4, 8, 8, 8]


def test_creates_refused_together_count_once_and_a_success_clears_the_pool() -> None:
    backoff = CreateBackoff(base=1, cap=8)
    first, new = backoff.failed(POOL, 0.0, "QuotaExceeded", "m")
    again, repeated = backoff.failed(POOL, 0.1, "QuotaExceeded", "m")
    assert new and not repeated and again.count == first.count == 1
    cleared = backoff.succeeded(POOL)
    assert cleared is not None and cleared.reason == "QuotaExceeded"
    assert backoff.succeeded(POOL) is None
    assert backoff.failed(POOL, 5.0, "Forbidden", "m")[0].count == 1


def test_the_event_is_about_the_function() -> None:
    function = {
        "apiVersion": "kubelambda.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "big", "namespace": "ns", "uid": "u1"},
    }
    event = pool_event(function, "QuotaExceeded", "x" * 2000, "2026-01-01T00:00:00Z", "op")
    assert event["involvedObject"] == {
        "apiVersion": "kubelambda.dev/v1alpha1",
        "kind": "Function",
        "name": "big",
        "namespace": "ns",
        "uid": "u1",
    }
    assert event["type"] == "Warning" and event["reason"] == "QuotaExceeded"
    assert len(event["message"]) == 1024 and event["metadata"]["namespace"] == "ns"
