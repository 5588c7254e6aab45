"""Lambda's scaling rate through the real dev gateway: `--scaling-rate=2` lets a function add two
new environments per 10 s; more concurrent calls are refused with 429 and Lambda's reason, while
calls that an idle warm environment serves never count."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.component.gateway.conftest import DevGateway, copy_functions


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[DevGateway]:
    dev = DevGateway(copy_functions(tmp_path, "slow"), "--no-reload", "--scaling-rate=2")
    yield dev
    dev.stop()


async def _calls(url: str, count: int, sleep: float) -> list[tuple[int, dict[str, Any]]]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one() -> tuple[int, dict[str, Any]]:
            async with session.post(url, data=json.dumps({"sleep": sleep})) as response:
                return response.status, json.loads(await response.read())

        return await asyncio.gather(*(one() for _ in range(count)))


def test_new_environments_are_rate_limited_and_warm_ones_are_not(gateway: DevGateway) -> None:
    url = f"{gateway.url}/2015-03-31/functions/slow/invocations"
    started = time.monotonic()
    first = asyncio.run(_calls(url, 6, 1.0))
    statuses = sorted(status for status, _ in first)
    assert statuses == [200, 200, 429, 429, 429, 429], first
    refused = [body for status, body in first if status == 429]
    assert {body["Reason"] for body in refused} == {"FunctionInvocationRateLimitExceeded"}
    pids = {body["pid"] for status, body in first if status == 200}
    assert len(pids) == 2
    # The two environments are warm now: calls they serve do not count against the rate.
    again = asyncio.run(_calls(url, 2, 0.1))
    assert [status for status, _ in again] == [200, 200], again
    assert {body["pid"] for _, body in again} <= pids
    # A third at once needs a new environment: still refused within the same 10 s.
    third = asyncio.run(_calls(url, 3, 0.5))
    if time.monotonic() - started < 9.0:  # the window has not slid (a loaded machine may be slow)
        assert sorted(s for s, _ in third) == [200, 200, 429], third
