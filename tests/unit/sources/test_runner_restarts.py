"""A poller that keeps failing: restarted with backoff, its failure said once per change."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from kubelambda.sources import runner
from kubelambda.sources.config import poller_config
from kubelambda.sources.engine import Context
from kubelambda.sources.invoke import GatewayInvoker
from kubelambda.sources.metrics import SourceMetrics
from kubelambda.sources.runner import PollerSet
from tests.unit.sources.test_config import REDIS, mapping


def test_the_same_failure_is_warned_once_and_a_new_one_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failures = ["broker down", "broker down", "broker down", "bad password", "bad password"]
    attempts: list[str] = []
    done = asyncio.Event()

    async def run(ctx: Context) -> None:
        if not failures:
            done.set()
            await asyncio.Event().wait()  # healthy from now on
        attempts.append(failures[0])
        raise ConnectionError(failures.pop(0))

    monkeypatch.setattr(runner, "runner_for", lambda kind: run)
    monkeypatch.setattr(runner, "RESTART_FIRST", 0.001)
    statuses: list[str] = []

    async def go() -> None:
        pollers = PollerSet(
            GatewayInvoker("http://127.0.0.1:9"),
            SourceMetrics(),
            on_status=lambda config, status: statuses.append(status.last_result),
        )
        await pollers.apply([poller_config(mapping(source=REDIS, startingPosition="LATEST"))])
        await asyncio.wait_for(done.wait(), 10)
        await pollers.close()
        await pollers.invoker.close()

    with caplog.at_level(logging.DEBUG, logger="kubelambda.sources.runner"):
        asyncio.run(go())
    assert len(attempts) == 5  # every failure was retried
    said: list[tuple[int, Any]] = [
        (r.levelno, r.args[1])  # type: ignore[index]
        for r in caplog.records
        if r.name == "kubelambda.sources.runner"
    ]
    assert said == [
        (logging.WARNING, "ConnectionError: broker down"),
        (logging.DEBUG, "ConnectionError: broker down"),
        (logging.DEBUG, "ConnectionError: broker down"),
        (logging.WARNING, "ConnectionError: bad password"),
        (logging.DEBUG, "ConnectionError: bad password"),
    ]
    # The status changes only when the problem does.
    problems = [s for s in statuses if s.startswith("PROBLEM")]
    assert problems == [
        "PROBLEM: ConnectionError: broker down",
        "PROBLEM: ConnectionError: bad password",
    ]


def test_a_poller_that_does_not_stop_holds_no_reload(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A source whose cleanup hangs (a client that never finishes closing): disabling its
    mapping still takes effect within the bound, and says so."""
    release = asyncio.Event()
    running = asyncio.Event()

    async def run(ctx: Context) -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        finally:
            await release.wait()  # ignores the cancellation until released

    monkeypatch.setattr(runner, "runner_for", lambda kind: run)
    monkeypatch.setattr(runner, "STOP_TIMEOUT", 0.2)
    states: list[str] = []

    async def go() -> float:
        pollers = PollerSet(
            GatewayInvoker("http://127.0.0.1:9"),
            SourceMetrics(),
            on_status=lambda config, status: states.append(status.state),
        )
        try:
            await pollers.apply([poller_config(mapping(source=REDIS, startingPosition="LATEST"))])
            await asyncio.wait_for(running.wait(), 10)
            began = asyncio.get_running_loop().time()
            disabled = mapping(source=REDIS, startingPosition="LATEST", enabled=False)
            await asyncio.wait_for(pollers.apply([poller_config(disabled)]), 5)
            return asyncio.get_running_loop().time() - began
        finally:
            release.set()
            await pollers.close()
            await pollers.invoker.close()

    with caplog.at_level(logging.WARNING, logger="kubelambda.sources.runner"):
        took = asyncio.run(go())
    assert states[-1] == "Disabled" and took < 2
    assert any("did not stop within" in r.getMessage() for r in caplog.records)
