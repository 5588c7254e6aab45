"""Dev mode's placement on real runtime processes: where the kernel says each one runs."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubelambda.runtime.environment import Environment
from kubelambda.runtime.placement import CpuPlacement, split
from kubelambda.runtime.provider import ProcessProvider
from kubelambda.runtime.spec import EnvState

from .helpers import make_request, make_spec, wait_until

APP = """
import os, time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"cpus": sorted(os.sched_getaffinity(0))}
"""

HALVES = split(frozenset(os.sched_getaffinity(0)))
pytestmark = pytest.mark.skipif(HALVES is None, reason="needs two CPUs allowed to this process")


@pytest.fixture
async def placing(tmp_path: Path, logs: list[str]) -> AsyncIterator[ProcessProvider]:
    assert HALVES is not None
    home, spread = HALVES
    # The test's own thread stays where it is: only the runtimes are placed.
    placement = CpuPlacement(home, spread, os.sched_setaffinity)
    prov = ProcessProvider(tmp_path / "envs", log_sink=logs.append, placement=placement)
    try:
        yield prov
    finally:
        await prov.stop_all()


async def _ready(provider: ProcessProvider) -> Environment:
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec({"app.py": APP}))
    return env


async def _cpus(env: Environment, sleep: float = 0.0) -> list[int]:
    result = await env.invoke(make_request(json.dumps({"sleep": sleep}).encode()))
    cpus: list[int] = json.loads(result.payload)["cpus"]
    return cpus


async def test_a_lone_invocation_runs_on_the_gateways_cpu(placing: ProcessProvider) -> None:
    assert HALVES is not None
    env = await _ready(placing)
    assert env.pid is not None and os.sched_getaffinity(env.pid) == HALVES[1]  # started apart
    assert await _cpus(env) == sorted(HALVES[0])
    assert await _cpus(env) == sorted(HALVES[0])  # and stays there, call after call
    assert env.pid is not None and os.sched_getaffinity(env.pid) == HALVES[0]


async def test_concurrent_invocations_run_on_the_other_cpus_and_come_back_alone(
    placing: ProcessProvider,
) -> None:
    assert HALVES is not None
    home, spread = HALVES
    first, second = await _ready(placing), await _ready(placing)
    assert await _cpus(second) == sorted(home)
    # `first` starts alone (beside the gateway); `second` starts while it runs: apart.
    slow = asyncio.ensure_future(_cpus(first, sleep=0.3))
    await wait_until(lambda: first.state == EnvState.BUSY)
    assert await _cpus(second) == sorted(spread)
    assert await slow == sorted(home)
    assert await _cpus(second) == sorted(home)  # alone again: back beside the gateway
