"""ProcessProvider: execution environments as local processes (dev mode and the tests).

Each environment's agent runs in this process, its Runtime API on 127.0.0.1 and a free port, its
runtime as a child process in its own process group and, where cgroup v2 is writable, its own
cgroup (`cgroup.py`: setsid cannot leave it; memory capped at memorySize). Nothing leaks:
stop_environment() and stop_all() end every group gracefully, and if this process dies instead,
the kernel kills each runtime (PR_SET_PDEATHSIG) and each runtime's guardian kills what the
runtime started, cgroup and all (it sees its lifeline pipe close).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from kubelambda.runtime.cgroup import CgroupTree
from kubelambda.runtime.code import CodeCache
from kubelambda.runtime.environment import Environment
from kubelambda.runtime.placement import CpuPlacement
from kubelambda.runtime.platform_log import LogSink
from kubelambda.runtime.release import Channel
from kubelambda.runtime.report import stdout_sink
from kubelambda.runtime.spec import EnvironmentSpec, EnvState

# Told which environment wrote a line (dev mode prefixes and buffers lines per function).
EnvironmentSink = Callable[[Environment, str], None]


class ProcessProvider:
    """Starts, specializes, health-checks and stops environments whose runtimes are children."""

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        log_sink: LogSink = stdout_sink,
        environment_sink: EnvironmentSink | None = None,
        host: str = "127.0.0.1",
        init_timeout: float = 10.0,
        stop_grace: float = 2.0,
        python: str = sys.executable,
        channel: Channel = "pipe",
        defer_closing: bool = False,
        placement: CpuPlacement | None = None,
    ) -> None:
        self._owns_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="kubelambda-envs-"))
        self.cache = CodeCache(self.base_dir / "code-cache")
        self._log_sink = log_sink
        self._environment_sink = environment_sink
        self._host = host
        self._init_timeout = init_timeout
        self._stop_grace = stop_grace
        self._python = python
        self._channel = channel
        self._defer_closing = defer_closing  # see `Environment.settle`
        self._placement = placement  # one for all its environments: it counts their calls
        self._environments: list[Environment] = []
        self._counter = 0
        # Each runtime in its own cgroup where the machine allows (containment, memory caps).
        self.cgroups = CgroupTree.create()

    @property
    def environments(self) -> list[Environment]:
        """The environments this provider started and has not stopped."""
        return list(self._environments)

    async def start_environment(self, runtime: str) -> Environment:
        """A generic warm environment for `runtime`, ready to be specialized."""
        self._counter += 1
        sink = self._log_sink
        labelled = self._environment_sink
        if labelled is not None:
            holder: list[Environment] = []  # filled before the environment writes a line

            def sink(line: str) -> None:
                labelled(holder[0], line)

        env = Environment(
            runtime,
            work_dir=self.base_dir / f"env-{self._counter}",
            host=self._host,
            log_sink=sink,
            code_cache=self.cache,
            init_timeout=self._init_timeout,
            stop_grace=self._stop_grace,
            python=self._python,
            cgroups=self.cgroups,
            channel=self._channel,
            defer_closing=self._defer_closing,
            placement=self._placement,
        )
        if labelled is not None:
            holder.append(env)
        self._environments.append(env)
        try:
            await env.start()
        except BaseException:
            self._environments.remove(env)
            raise
        return env

    async def start_specialized(self, spec: EnvironmentSpec) -> Environment:
        """Cold start from nothing, or provisioned concurrency: start, then specialize."""
        env = await self.start_environment(spec.runtime)
        try:
            await env.specialize(spec)
        except BaseException:
            await self.stop_environment(env)
            raise
        return env

    def healthy(self, env: Environment) -> bool:
        """Whether `env` can still serve: its runtime lives (or is being replaced) and it is
        neither failed nor stopped."""
        if env.state in (EnvState.FAILED, EnvState.STOPPED):
            return False
        return env.alive or env.state == EnvState.INITIALIZING

    async def health_check(self) -> list[Environment]:
        """Stop and forget the environments that can no longer serve; return them."""
        broken = [env for env in self._environments if not self.healthy(env)]
        for env in broken:
            await self.stop_environment(env)
        return broken

    async def stop_environment(self, env: Environment) -> None:
        if env in self._environments:
            self._environments.remove(env)
        await env.stop()
        shutil.rmtree(env.work_dir, ignore_errors=True)

    async def stop_all(self) -> None:
        environments, self._environments = self._environments, []
        await asyncio.gather(*(env.stop() for env in environments), return_exceptions=True)
        for env in environments:
            shutil.rmtree(env.work_dir, ignore_errors=True)
        if self.cgroups is not None:
            self.cgroups.close()
        if self._owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
