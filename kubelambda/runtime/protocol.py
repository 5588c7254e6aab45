"""The surface the gateway uses, shared by in-process and remote execution environments."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from kubelambda.runtime.spec import EnvironmentSpec, EnvState, InvokeRequest, InvokeResult
from kubelambda.runtime.stream import ResponseStream


@runtime_checkable
class ExecutionEnvironment(Protocol):
    """One execution environment: `Environment` (in-process) or `RemoteEnvironment` (an agent).

    `invoke` raises `EnvironmentBusy` at once when an invocation is running, and
    `EnvironmentStateError` when the environment is not specialized (or is stopped).
    """

    @property
    def state(self) -> EnvState: ...

    @property
    def spec(self) -> EnvironmentSpec | None: ...

    @property
    def invocations(self) -> int: ...

    @property
    def last_used_at(self) -> float: ...

    @property
    def alive(self) -> bool: ...

    async def specialize(self, spec: EnvironmentSpec) -> None: ...

    async def invoke(
        self, request: InvokeRequest, stream: ResponseStream | None = None
    ) -> InvokeResult: ...

    async def stop(self) -> None: ...
