"""The schedule poller on a rate(1 minute) mapping, with the clock and sleep injected."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from kubelambda.api.resources import EventSourceMapping, parse_resource
from kubelambda.sources.config import poller_config
from kubelambda.sources.engine import Context
from kubelambda.sources.invoke import InvokeResult
from kubelambda.sources.metrics import SourceMetrics
from kubelambda.sources.readers.schedule_reader import run


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.until = float("inf")
        self.passed = asyncio.Event()  # set once the clock reaches `until`

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.now >= self.until:
            self.passed.set()
            await asyncio.Event().wait()  # time stops here until the test cancels the poller
        await asyncio.sleep(0)


class Invoker:
    def __init__(self, clock: Clock, status: int = 202) -> None:
        self.clock = clock
        self.calls: list[tuple[float, str, str | None, dict[str, Any], str]] = []
        self.status = status

    async def invoke(
        self,
        function: str,
        qualifier: str | None,
        payload: bytes,
        *,
        invocation_type: str = "RequestResponse",
    ) -> InvokeResult:
        self.calls.append((self.clock(), function, qualifier, json.loads(payload), invocation_type))
        return InvokeResult(self.status, b"", None, None)


class Memory:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def load(self) -> dict[str, Any]:
        return dict(self.values)

    async def save(self, values: dict[str, Any]) -> None:
        self.values = dict(values)


def mapping(expression: str, **source: Any) -> EventSourceMapping:
    res = parse_resource(
        {
            "apiVersion": "kubelambda.dev/v1alpha1",
            "kind": "EventSourceMapping",
            "metadata": {"name": "tick"},
            "spec": {
                "functionName": "hello:live",
                "source": {"schedule": {"expression": expression, **source}},
            },
        }
    )
    assert isinstance(res, EventSourceMapping)
    return res


async def run_until(
    clock: Clock,
    invoker: Invoker,
    state: Memory,
    until: float,
    expression: str = "rate(1 minute)",
    **source: Any,
) -> None:
    ctx = Context(
        poller_config(mapping(expression, **source)),
        invoker,
        SourceMetrics(),  # type: ignore[arg-type]
        clock=clock,
        state=state,
    )
    clock.until = until
    clock.passed.clear()
    task = asyncio.create_task(run(ctx, sleep=clock.sleep))
    await asyncio.wait_for(clock.passed.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_rate_one_minute_fires_each_minute_with_eventbridges_event() -> None:
    clock = Clock(1_000_000.0)
    invoker = Invoker(clock)
    state = Memory()
    await run_until(clock, invoker, state, until=1_000_000 + 5 * 60 + 1)
    times = [c[0] for c in invoker.calls]
    assert times == [1_000_000 + 60 * k for k in range(1, 6)]
    _, function, qualifier, event, kind = invoker.calls[0]
    assert (function, qualifier, kind) == ("default.hello", "live", "Event")
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["resources"] == ["arn:aws:events:us-east-1:000000000000:rule/tick"]
    assert state.values == {"anchor": 1_000_000.0, "lastFired": 1_000_300.0}


async def test_a_restart_does_not_fire_a_tick_twice_and_catches_up_once() -> None:
    clock = Clock(0.0)
    invoker = Invoker(clock)
    state = Memory()
    await run_until(clock, invoker, state, until=121)
    assert len(invoker.calls) == 2
    clock.now = 130.0  # restarted within the same minute: nothing to fire again
    await run_until(clock, invoker, state, until=170)
    assert len(invoker.calls) == 2
    clock.now = 60 * 10 + 5  # down for eight ticks: the latest is fired once
    await run_until(clock, invoker, state, until=60 * 10 + 30)
    assert [c[0] for c in invoker.calls[2:]] == [60 * 10 + 5]


async def test_constant_input_and_a_failed_invoke_is_retried_not_lost() -> None:
    clock = Clock(0.0)
    invoker = Invoker(clock, status=500)
    state = Memory()
    await run_until(clock, invoker, state, until=63, input='{"name": "team"}')
    assert len(invoker.calls) >= 2 and all(c[3] == {"name": "team"} for c in invoker.calls)
    assert state.values.get("lastFired") is None
