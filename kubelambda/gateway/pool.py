"""The environment pool: which environment serves the next invocation of a version.

In order of preference (the dispatch rule of the design):

1. an idle environment already specialized for this exact configuration (a warm start);
2. a generic warm environment of the runtime, specialized now (a cold start without a process
   start: the cheap one); a configurable minimum of them per runtime in use is started ahead
   of demand (in parallel) and topped up, one at a time, as soon as one is taken;
3. a new environment from the provider, within a bounded wait (a full cold start).

Idle environments are reaped after a keep-alive and recycled after a maximum age; environments
of a configuration that is no longer current (after a hot reload or a code update) are stopped
once their in-flight invocation ends. Provisioned concurrency keeps N environments specialized
ahead of time with AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from kubelambda.gateway.provider import EnvironmentHandle, EnvironmentProvider
from kubelambda.runtime.archive import CodeError
from kubelambda.serving.errors import LambdaError, as_lambda_error
from kubelambda.serving.target import InitType, Target

log = logging.getLogger(__name__)

StartKind = Literal["cold", "warm", "provisioned"]


@dataclass(frozen=True)
class PoolSettings:
    # The generic warm minimum per runtime in use: filled at start (in parallel) and topped up
    # as soon as one is taken, so back-to-back new functions all start warm.
    generic_per_runtime: int = 1
    # Top-ups started at once per runtime: one at a time, so that starting interpreters do not
    # take the CPU from the specializations of a burst of new functions.
    topup_parallel: int = 1
    keepalive: float = 300.0  # idle seconds before an environment is stopped
    max_age: float = 7200.0  # environments are recycled after this, when idle
    start_timeout: float = 30.0  # the bounded wait for a new environment
    max_parallel_starts: int = 8


@dataclass
class _Meta:
    key: tuple[str, InitType]
    created: float
    last_used: float
    runtime: str


@dataclass(frozen=True)
class ProvisionedTarget:
    """A configuration that should have `count` provisioned environments."""

    count: int
    target: Target


def named(target: Target) -> str:
    """How messages name a configuration: namespace.function:version, as users address it."""
    spec = target.on_demand or target.provisioned
    if spec is None:
        return target.revision
    prefix = "" if spec.namespace == "default" else f"{spec.namespace}."
    return f"{prefix}{spec.function_name}:{spec.function_version}"


def expired(meta: _Meta, now: float, settings: PoolSettings) -> bool:
    return now - meta.last_used >= settings.keepalive or now - meta.created >= settings.max_age


@dataclass
class EnvironmentPool:
    provider: EnvironmentProvider
    settings: PoolSettings = field(default_factory=PoolSettings)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._idle: dict[tuple[str, InitType], list[EnvironmentHandle]] = {}
        self._generic: dict[str, list[EnvironmentHandle]] = {}
        self._meta: dict[EnvironmentHandle, _Meta] = {}
        self._busy: set[EnvironmentHandle] = set()
        self._current: set[str] | None = None  # revisions still served; None: all
        self._runtimes: set[str] = set()
        self._provisioned: dict[str, ProvisionedTarget] = {}
        self._starts = asyncio.Semaphore(self.settings.max_parallel_starts)
        self._tasks: set[asyncio.Task[None]] = set()
        self._starting: dict[str, int] = {}  # generic environments being started, per runtime
        self._filled: set[str] = set()  # runtimes whose minimum was reached once
        self._pulse = asyncio.Event()  # set (and replaced) whenever the generic pool changes
        self._closed = False

    # The hot path.

    async def acquire(
        self, target: Target, provisioned: bool = False
    ) -> tuple[EnvironmentHandle, StartKind]:
        """An environment serving `target`, marked busy; release() it afterwards."""
        revision, runtime = target.revision, target.runtime
        order: list[InitType] = ["provisioned-concurrency", "on-demand"] if provisioned else []
        order = order or ["on-demand"]
        for init_type in order:
            stack = self._idle.get((revision, init_type))
            while stack:
                env = stack.pop()
                if env.alive:
                    self._busy.add(env)
                    return env, "provisioned" if init_type != "on-demand" else "warm"
                self._discard(env)
        target.spec("on-demand")  # an unservable target raises its own error before any start
        env = await self._generic_or_new(runtime)
        now = self.clock()
        self._meta[env] = _Meta((revision, "on-demand"), now, now, runtime)
        self._busy.add(env)
        try:
            await self.provider.specialize(env, target, "on-demand")
        except Exception as exc:
            self._busy.discard(env)
            self._discard(env)
            log.warning("%s: the execution environment could not start: %s", named(target), exc)
            if isinstance(exc, CodeError):  # the function's code was refused: say why
                raise as_lambda_error(exc) from exc
            raise LambdaError(
                "ServiceException", f"The execution environment could not start: {exc}"
            ) from exc
        return env, "cold"

    def release(self, env: EnvironmentHandle) -> None:
        self._busy.discard(env)
        meta = self._meta.get(env)
        if meta is None:
            return
        if not env.alive or self._closed or not self._is_current(meta.key[0]):
            self._discard(env)
            return
        meta.last_used = self.clock()
        self._idle.setdefault(meta.key, []).append(env)
        if meta.key[1] == "provisioned-concurrency":
            self._trim_provisioned()

    # Generic warm environments.

    async def _generic_or_new(self, runtime: str) -> EnvironmentHandle:
        stack = self._generic.get(runtime)
        while stack:
            env = stack.pop()
            self._meta.pop(env, None)
            self._schedule_refill(runtime)
            if env.alive:
                return env
            self._spawn(self.provider.stop_environment(env))
        self._schedule_refill(runtime)
        return await self._start(runtime)

    async def _start(self, runtime: str) -> EnvironmentHandle:
        try:
            async with asyncio.timeout(self.settings.start_timeout), self._starts:
                return await self.provider.start_environment(runtime)
        except TimeoutError:
            raise LambdaError(
                "ServiceException",
                f"No execution environment for {runtime} became ready within "
                f"{self.settings.start_timeout:g} s",
            ) from None

    def use_runtimes(self, runtimes: set[str]) -> None:
        """Keeps a small generic warm pool for each runtime in use."""
        self._runtimes = set(runtimes)
        for runtime in runtimes:
            self._schedule_refill(runtime)

    def _schedule_refill(self, runtime: str) -> None:
        """Start, in parallel, as many generic environments as `runtime` lacks."""
        if runtime not in self._runtimes or self._closed:
            return
        starting = self._starting.get(runtime, 0)
        missing = self.settings.generic_per_runtime - len(self._generic.get(runtime, []))
        if runtime in self._filled:  # a top-up, not the first fill
            missing = min(missing, self.settings.topup_parallel)
        for _ in range(missing - starting):
            self._starting[runtime] = self._starting.get(runtime, 0) + 1
            self._spawn(self._add_generic(runtime))

    async def _add_generic(self, runtime: str) -> None:
        try:
            env = await self._start(runtime)
            if self._closed:
                await self.provider.stop_environment(env)
                return
            self._generic.setdefault(runtime, []).append(env)
        except Exception as exc:  # not retried in a loop: the next use of the runtime retries
            log.warning("refilling the %s warm pool failed: %s", runtime, exc)
            return
        finally:
            self._starting[runtime] -= 1
            self._changed()
        if len(self._generic[runtime]) >= self.settings.generic_per_runtime:
            self._filled.add(runtime)
        self._schedule_refill(runtime)  # the next top-up, if more were taken meanwhile

    def _changed(self) -> None:
        pulse, self._pulse = self._pulse, asyncio.Event()
        pulse.set()

    def warm(self) -> bool:
        """Whether every runtime in use has its generic minimum (or has stopped trying)."""
        minimum = self.settings.generic_per_runtime
        return all(
            len(self._generic.get(runtime, [])) >= minimum or not self._starting.get(runtime)
            for runtime in self._runtimes
        )

    async def wait_warm(self) -> None:
        """Until `warm()`: dev mode says `ready:` only then, so no first call starts cold."""
        while not self.warm() and not self._closed:
            await self._pulse.wait()

    # Provisioned concurrency and configuration changes.

    def set_current(self, revisions: set[str], provisioned: dict[str, ProvisionedTarget]) -> None:
        """After a reload: stop idle environments of stale revisions, (re)fill provisioned ones."""
        self._current = set(revisions)
        self._provisioned = dict(provisioned)
        for key in list(self._idle):
            if key[0] not in self._current:
                for env in self._idle.pop(key):
                    self._discard(env)
        for revision in self._provisioned:
            self._spawn(self._fill_provisioned(revision))
        self._trim_provisioned()

    def _trim_provisioned(self) -> int:
        """Stop idle provisioned environments beyond their target (lowered, or now 0); busy ones
        are judged again when released."""
        stopped = 0
        for key, stack in list(self._idle.items()):
            if key[1] != "provisioned-concurrency":
                continue
            target = self._provisioned.get(key[0])
            have = sum(1 for m in self._meta.values() if m.key == key)
            extra = min(max(have - (target.count if target else 0), 0), len(stack))
            for env in stack[:extra]:  # the longest idle first
                self._discard(env)
                stopped += 1
            del stack[:extra]
        return stopped

    async def _fill_provisioned(self, revision: str) -> None:
        target = self._provisioned.get(revision)
        if target is None:
            return
        key: tuple[str, InitType] = (revision, "provisioned-concurrency")
        have = sum(1 for e, m in self._meta.items() if m.key == key)
        runtime = target.target.runtime
        for _ in range(max(target.count - have, 0)):
            env = await self._generic_or_new(runtime)
            now = self.clock()
            self._meta[env] = _Meta(key, now, now, runtime)
            try:
                await self.provider.specialize(env, target.target, "provisioned-concurrency")
            except Exception as exc:
                log.warning("provisioned concurrency for %s failed: %s", named(target.target), exc)
                self._discard(env)
                continue
            self._idle.setdefault(key, []).append(env)

    def provisioned_ready(self, revision: str) -> int:
        key = (revision, "provisioned-concurrency")
        return sum(1 for m in self._meta.values() if m.key == key)

    def _is_current(self, revision: str) -> bool:
        return self._current is None or revision in self._current

    # Reaping and shutdown.

    async def reap(self) -> int:
        """Stops idle environments past their keep-alive or maximum age; returns how many."""
        now = self.clock()
        stopped = 0
        for key, stack in list(self._idle.items()):
            if key[1] == "provisioned-concurrency" and self._is_current(key[0]):
                keep = [e for e in stack if now - self._meta[e].created < self.settings.max_age]
            else:
                keep = [e for e in stack if not expired(self._meta[e], now, self.settings)]
            for env in stack:
                if env not in keep:
                    self._discard(env)
                    stopped += 1
            self._idle[key] = keep
        stopped += self._trim_provisioned()
        for revision in self._provisioned:
            self._spawn(self._fill_provisioned(revision))
        return stopped

    async def run_reaper(self, interval: float | None = None) -> None:
        every = interval or max(min(self.settings.keepalive / 4, 30.0), 0.05)
        while not self._closed:
            await asyncio.sleep(every)
            await self.reap()

    def _discard(self, env: EnvironmentHandle) -> None:
        self._meta.pop(env, None)
        self._spawn(self.provider.stop_environment(env))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._closed = True
        self._changed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.provider.stop_all()
        self._idle.clear()
        self._generic.clear()
        self._meta.clear()
        self._busy.clear()

    # Views for metrics and tests.

    def idle(self, revision: str) -> int:
        """Idle on-demand environments of `revision` (the scaling rate skips calls they serve)."""
        return len(self._idle.get((revision, "on-demand"), ()))

    def counts(self) -> dict[str, int]:
        return {
            "busy": len(self._busy),
            "idle": sum(len(s) for s in self._idle.values()),
            "generic": sum(len(s) for s in self._generic.values()),
        }
