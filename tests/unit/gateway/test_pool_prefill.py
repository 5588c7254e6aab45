"""The generic warm pool's minimum: filled ahead of demand, topped up in parallel as it is used,
and `wait_warm` (what dev mode waits for before `ready:`) returning only once it is full."""

from __future__ import annotations

import asyncio

from kubelambda.gateway.pool import EnvironmentPool, PoolSettings
from tests.unit.gateway.test_pool import FakeEnv, FakeProvider, target


class GatedProvider(FakeProvider):
    """Each start waits until the test lets exactly that many through."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = 0
        self.permits = asyncio.Semaphore(0)
        self.fail_next = False

    async def start_environment(self, runtime: str) -> FakeEnv:
        self.waiting += 1
        try:
            await self.permits.acquire()
        finally:
            self.waiting -= 1
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("cannot start")
        return await super().start_environment(runtime)


async def until(condition: object, limit: int = 200) -> None:
    """Let the loop run until `condition()` holds (a bounded number of turns, no clock)."""
    for _ in range(limit):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def test_the_minimum_starts_in_parallel_and_wait_warm_waits_for_all() -> None:
    provider = GatedProvider()
    pool = EnvironmentPool(provider, PoolSettings(generic_per_runtime=4))
    pool.use_runtimes({"python3.11", "python3.12"})
    await until(lambda: provider.waiting == 8)  # all eight starts run at once, none in series
    waiter = asyncio.ensure_future(pool.wait_warm())
    for _ in range(7):
        provider.permits.release()
    await until(lambda: len(provider.started) == 7)
    assert not pool.warm() and not waiter.done(), "one runtime still lacks one environment"
    provider.permits.release()
    await asyncio.wait_for(waiter, 5)
    assert pool.warm() and pool.counts()["generic"] == 8
    await pool.close()


async def test_taken_environments_are_topped_up_one_at_a_time() -> None:
    provider = GatedProvider()
    pool = EnvironmentPool(provider, PoolSettings(generic_per_runtime=5))
    pool.use_runtimes({"python3.11"})
    for _ in range(5):
        provider.permits.release()
    await asyncio.wait_for(pool.wait_warm(), 5)
    taken = [await pool.acquire(target(f"rev{i}")) for i in range(5)]  # five new functions
    assert [kind for _, kind in taken] == ["cold"] * 5
    assert {env for env, _ in taken} == set(provider.started), "all five came from the pool"
    for have in range(5):
        # One top-up at a time (starting interpreters would slow the burst's specializations).
        started = 5 + have
        await until(lambda: provider.waiting == 1 and len(provider.started) == started)  # noqa: B023
        assert pool.counts()["generic"] == have and not pool.warm()
        provider.permits.release()
    await asyncio.wait_for(pool.wait_warm(), 5)
    assert pool.counts() == {"busy": 5, "idle": 0, "generic": 5}
    assert provider.waiting == 0, "no more than the minimum is started"
    await pool.close()


async def test_a_failed_start_does_not_hold_ready_and_the_next_use_retries() -> None:
    provider = GatedProvider()
    pool = EnvironmentPool(provider, PoolSettings(generic_per_runtime=1))
    provider.fail_next = True
    pool.use_runtimes({"python3.11"})
    provider.permits.release()
    await asyncio.wait_for(pool.wait_warm(), 5)  # gave up: ready is not held forever
    assert pool.counts()["generic"] == 0
    acquiring = asyncio.ensure_future(pool.acquire(target("rev")))
    await until(lambda: provider.waiting == 2)  # its own start, and a refill beside it
    provider.permits.release()
    provider.permits.release()
    env, kind = await asyncio.wait_for(acquiring, 5)
    assert kind == "cold" and not env.stopped
    await until(lambda: pool.counts()["generic"] == 1)
    await pool.close()


async def test_close_releases_a_waiter() -> None:
    provider = GatedProvider()
    pool = EnvironmentPool(provider, PoolSettings(generic_per_runtime=2))
    pool.use_runtimes({"python3.11"})
    waiter = asyncio.ensure_future(pool.wait_warm())
    await until(lambda: provider.waiting == 2)
    await pool.close()
    await asyncio.wait_for(waiter, 5)
