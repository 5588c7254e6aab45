"""The environment pool with a fake provider: reuse, specialization, reaping, stale revisions."""

from __future__ import annotations

import asyncio

import pytest

from kubelambda.gateway.pool import EnvironmentPool, PoolSettings
from kubelambda.runtime.spec import CodeRef, EnvironmentSpec, InvokeRequest, InvokeResult
from kubelambda.serving.errors import LambdaError
from kubelambda.serving.shape import PodShape
from kubelambda.serving.target import InitType, Target


class FakeEnv:
    def __init__(self, runtime: str) -> None:
        self.runtime = runtime
        self.alive = True
        self.specialized: list[EnvironmentSpec] = []
        self.stopped = False

    async def specialize(self, spec: EnvironmentSpec) -> None:
        if spec.handler == "broken":
            raise RuntimeError("no such code")
        self.specialized.append(spec)

    async def invoke(self, request: InvokeRequest, stream: object = None) -> InvokeResult:
        raise NotImplementedError

    async def stop(self) -> None:
        self.stopped = True
        self.alive = False


class FakeProvider:
    def __init__(self) -> None:
        self.started: list[FakeEnv] = []
        self.stopped: list[FakeEnv] = []
        self.gate: asyncio.Event | None = None

    async def start_environment(self, runtime: str) -> FakeEnv:
        if self.gate is not None:
            await self.gate.wait()
        env = FakeEnv(runtime)
        self.started.append(env)
        return env

    async def specialize(self, env: FakeEnv, target: Target, init: InitType) -> None:
        await env.specialize(target.spec(init))

    async def stop_environment(self, env: FakeEnv) -> None:
        await env.stop()
        self.stopped.append(env)

    async def stop_all(self) -> None:
        for env in self.started:
            if not env.stopped:
                await self.stop_environment(env)


def spec(handler: str = "a.b") -> EnvironmentSpec:
    return EnvironmentSpec(
        function_name="f",
        function_arn="arn",
        runtime="python3.11",
        handler=handler,
        code=CodeRef(inline={"a.py": "x"}),
    )


def target(revision: str = "rev", handler: str = "a.b") -> Target:
    shape = PodShape("python3.11", 128, 512)
    return Target(revision, "python3.11", shape, spec(handler), spec(handler))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_warm_reuse_and_generic_specialization() -> None:
    provider = FakeProvider()
    pool = EnvironmentPool(provider, PoolSettings(generic_per_runtime=1))
    pool.use_runtimes({"python3.11"})
    await settle()
    assert pool.counts()["generic"] == 1
    env, kind = await pool.acquire(target("rev"))
    assert kind == "cold" and env is provider.started[0], "the generic one is specialized first"
    pool.release(env)
    again, kind = await pool.acquire(target("rev"))
    assert (again, kind) == (env, "warm")
    await settle()
    assert pool.counts()["generic"] == 1, "the generic pool refills after a claim"
    await pool.close()


async def test_reaper_stops_idle_and_old_environments() -> None:
    clock = Clock()
    provider = FakeProvider()
    pool = EnvironmentPool(
        provider, PoolSettings(generic_per_runtime=0, keepalive=10, max_age=100), clock
    )
    a, _ = await pool.acquire(target("rev"))
    pool.release(a)
    clock.now = 9.9
    assert await pool.reap() == 0
    clock.now = 10.0
    assert await pool.reap() == 1
    await settle()
    assert a.stopped
    await pool.close()


async def test_stale_revision_is_stopped_after_its_call_ends() -> None:
    provider = FakeProvider()
    pool = EnvironmentPool(provider, PoolSettings(generic_per_runtime=0))
    busy, _ = await pool.acquire(target("old"))
    idle, _ = await pool.acquire(target("old"))
    pool.release(idle)
    pool.set_current({"new"}, {})
    await settle()
    assert idle.stopped and not busy.stopped, "in-flight calls finish on the old code"
    pool.release(busy)
    await settle()
    assert busy.stopped
    await pool.close()


async def test_dead_environment_is_never_handed_out() -> None:
    provider = FakeProvider()
    pool = EnvironmentPool(provider, PoolSettings(generic_per_runtime=0))
    env, _ = await pool.acquire(target("rev"))
    pool.release(env)
    env.alive = False
    other, kind = await pool.acquire(target("rev"))
    assert other is not env and kind == "cold"
    await pool.close()


async def test_failed_specialization_is_a_lambda_error_and_the_env_is_dropped() -> None:
    provider = FakeProvider()
    pool = EnvironmentPool(provider, PoolSettings(generic_per_runtime=0))
    with pytest.raises(LambdaError) as refused:
        await pool.acquire(target("rev", "broken"))
    assert refused.value.code == "ServiceException"
    await settle()
    assert provider.started[0].stopped
    await pool.close()


async def test_start_wait_is_bounded() -> None:
    provider = FakeProvider()
    provider.gate = asyncio.Event()
    pool = EnvironmentPool(provider, PoolSettings(generic_per_runtime=0, start_timeout=0.05))
    with pytest.raises(LambdaError) as refused:
        await pool.acquire(target("rev"))
    assert "became ready within" in refused.value.message
    provider.gate.set()
    await pool.close()


async def test_provisioned_environments_are_prespecialized() -> None:
    from kubelambda.gateway.pool import ProvisionedTarget

    provider = FakeProvider()
    pool = EnvironmentPool(provider, PoolSettings(generic_per_runtime=0))
    pool.set_current({"rev"}, {"rev": ProvisionedTarget(2, target("rev"))})
    for _ in range(20):
        await settle()
    assert pool.provisioned_ready("rev") == 2
    env, kind = await pool.acquire(target("rev"), provisioned=True)
    assert kind == "provisioned" and env.specialized
    await pool.close()


async def test_lowering_provisioned_concurrency_stops_the_extra_environments() -> None:
    from kubelambda.gateway.pool import ProvisionedTarget

    provider = FakeProvider()
    pool = EnvironmentPool(provider, PoolSettings(generic_per_runtime=0))
    pool.set_current({"rev"}, {"rev": ProvisionedTarget(3, target("rev"))})
    for _ in range(20):
        await settle()
    assert pool.provisioned_ready("rev") == 3
    busy, _ = await pool.acquire(target("rev"), provisioned=True)
    pool.set_current({"rev"}, {"rev": ProvisionedTarget(1, target("rev"))})
    await settle()
    # The two idle ones go at once; the busy one is kept (it is the one left).
    assert pool.provisioned_ready("rev") == 1 and not busy.stopped
    assert len(provider.stopped) == 2
    pool.set_current({"rev"}, {})  # provisioned concurrency removed, the revision still served
    assert pool.provisioned_ready("rev") == 1, "busy: judged when released"
    pool.release(busy)
    await settle()
    assert pool.provisioned_ready("rev") == 0 and busy.stopped
    await pool.close()
