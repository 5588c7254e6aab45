"""Execution environments as local processes, as the dispatch core sees them (dev mode).

`kubelambda.runtime.provider.ProcessProvider` starts and stops the environments; this adds the
one thing the pool asks of a provider beyond that: specialize with a resolved `Target`. Local
processes have no shape to honour, so only the target's spec is used.
"""

from __future__ import annotations

from kubelambda.runtime.environment import Environment
from kubelambda.runtime.provider import ProcessProvider
from kubelambda.serving.target import InitType, Target


class LocalEnvironments:
    """The `EnvironmentProvider` of dev mode."""

    def __init__(self, processes: ProcessProvider) -> None:
        self.processes = processes

    async def start_environment(self, runtime: str) -> Environment:
        return await self.processes.start_environment(runtime)

    async def specialize(self, env: Environment, target: Target, init: InitType) -> None:
        await env.specialize(target.spec(init))

    async def stop_environment(self, env: Environment) -> None:
        await self.processes.stop_environment(env)

    async def stop_all(self) -> None:
        await self.processes.stop_all()
