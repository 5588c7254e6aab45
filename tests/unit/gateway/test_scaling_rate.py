"""Lambda's scaling rate: at most N new environments per function in any 10 s, per namespace."""

from __future__ import annotations

import json

import pytest
from botocore.loaders import Loader
from hypothesis import given
from hypothesis import strategies as st

from kubelambda.gateway.ledger.rate import ScalingRate, parse_rates
from kubelambda.serving.errors import RATE_LIMIT, RESERVED_RATE_LIMIT, throttled


def test_a_thousand_new_environments_then_429_until_the_window_slides() -> None:
    rate = ScalingRate()
    assert all(rate.allow("ns", "f", 0.001 * i) for i in range(1000))
    assert not rate.allow("ns", "f", 5.0)
    assert rate.allow("ns", "g", 5.0)  # per function
    assert rate.allow("other", "f", 5.0)  # per namespace
    assert not rate.allow("ns", "f", 9.9999)
    assert rate.allow("ns", "f", 10.0)  # the first start (t=0) has just left the window
    assert not rate.allow("ns", "f", 10.0)
    assert rate.recent("ns", "f", 10.0) == 1000


def test_limits_per_namespace() -> None:
    rate = ScalingRate(limit=1000, per_namespace={"small": 2})
    assert [rate.allow("small", "f", 0.0) for _ in range(3)] == [True, True, False]
    assert rate.limit_for("big") == 1000


@given(st.lists(st.floats(0, 100, allow_nan=False), max_size=200), st.integers(0, 10))
def test_never_more_than_the_limit_in_any_window(times: list[float], limit: int) -> None:
    rate = ScalingRate(limit=limit, window=10.0)
    allowed = [t for t in sorted(times) if rate.allow("ns", "f", t)]
    for t in allowed:
        assert sum(1 for u in allowed if t - 10.0 < u <= t) <= limit


def test_flags() -> None:
    assert parse_rates([]) == (1000, {})
    assert parse_rates(["500", "team=20"]) == (500, {"team": 20})
    for bad in ("x", "=3", "ns=-1"):
        with pytest.raises(ValueError, match="--scaling-rate"):
            parse_rates([bad])


def test_reasons_are_botocores() -> None:
    reasons = Loader().load_service_model("lambda", "service-2")["shapes"]["ThrottleReason"]["enum"]
    assert RATE_LIMIT in reasons and RESERVED_RATE_LIMIT in reasons
    error = throttled(RATE_LIMIT)
    assert error.status == 429 and json.loads(error.body())["Reason"] == RATE_LIMIT
