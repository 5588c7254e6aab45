"""Concurrency through the real gateway: bursts, reserved limits and a bounded load test."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.component.gateway.conftest import DevGateway


async def post(
    session: aiohttp.ClientSession, url: str, payload: dict[str, Any]
) -> tuple[int, dict[str, str], bytes]:
    async with session.post(url, data=json.dumps(payload)) as response:
        return response.status, dict(response.headers), await response.read()


def invocations_url(gateway: DevGateway, name: str) -> str:
    return f"{gateway.url}/2015-03-31/functions/{name}/invocations"


def max_overlap(log: Path) -> int:
    """How many invocations ran at once, from the functions' own start/end timestamps."""
    events: list[tuple[int, int]] = []
    for line in log.read_text().splitlines():
        start, end = map(int, line.split())
        events += [(start, 1), (end, -1)]
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


def test_burst_of_50_on_a_cold_function_all_succeed(gateway: DevGateway, tmp_path: Path) -> None:
    log = tmp_path / "burst.log"

    async def burst() -> list[tuple[int, dict[str, str], bytes]]:
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            url = invocations_url(gateway, "slow")
            return await asyncio.gather(
                *(post(session, url, {"sleep": 0.5, "log": str(log)}) for _ in range(50))
            )

    results = asyncio.run(burst())
    statuses = [status for status, _, _ in results]
    assert statuses == [200] * 50, [body for _, _, body in results if _ != 200][:3]
    assert not any("X-Amz-Function-Error" in headers for _, headers, _ in results)
    pids = {json.loads(body)["pid"] for _, _, body in results}
    assert len(pids) > 1, "the burst must fan out to several environments"
    assert max_overlap(log) > 1


def test_reserved_concurrency_load_never_exceeds_the_limit(
    gateway: DevGateway, tmp_path: Path
) -> None:
    """10x the reservation (3) hammers `reserved` for 10 s, on loopback, bounded in time."""
    log = tmp_path / "load.log"
    reserved, clients, seconds = 3, 30, 10.0
    counts = {"ok": 0, "throttled": 0, "other": 0}
    reasons: set[str] = set()

    async def client(session: aiohttp.ClientSession, deadline: float) -> None:
        url = invocations_url(gateway, "reserved")
        while time.monotonic() < deadline:
            status, headers, body = await post(session, url, {"sleep": 0.05, "log": str(log)})
            if status == 200:
                counts["ok"] += 1
            elif status == 429 and headers.get("x-amzn-ErrorType") == "TooManyRequestsException":
                counts["throttled"] += 1
                reasons.add(json.loads(body)["Reason"])
            else:
                counts["other"] += 1

    async def load() -> None:
        deadline = time.monotonic() + seconds
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(client(session, deadline) for _ in range(clients)))

    asyncio.run(load())
    assert counts["other"] == 0, counts
    assert counts["ok"] > 0 and counts["throttled"] > 0, counts
    assert reasons == {"ReservedFunctionConcurrentInvocationLimitExceeded"}
    assert max_overlap(log) == reserved, "in flight must reach the limit and never pass it"
    assert len(log.read_text().splitlines()) == counts["ok"]


async def concurrent_executions(session: aiohttp.ClientSession, url: str, function: str) -> float:
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if (
            line.startswith("kubelambda_concurrent_executions{")
            and f'function="{function}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_throttled_sync_call_is_refused_while_the_others_still_run(gateway: DevGateway) -> None:
    """With `reserved` (3) fully busy, a fourth call gets its 429 before any of the three ends:
    it is refused, not queued."""

    async def scenario() -> tuple[int, bool, list[int]]:
        async with aiohttp.ClientSession() as session:
            url = invocations_url(gateway, "reserved")
            busy = [asyncio.create_task(post(session, url, {"sleep": 4})) for _ in range(3)]
            deadline = time.monotonic() + 20
            while await concurrent_executions(session, gateway.url, "reserved") < 3:
                assert time.monotonic() < deadline, "the three calls never ran together"
                await asyncio.sleep(0.02)
            status, _, _ = await post(session, url, {"sleep": 0})
            still_running = not any(task.done() for task in busy)
            results = await asyncio.gather(*busy)
            return status, still_running, [s for s, _, _ in results]

    status, still_running, others = asyncio.run(scenario())
    assert status == 429
    assert still_running
    assert others == [200, 200, 200]
