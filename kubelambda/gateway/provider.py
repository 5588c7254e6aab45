"""What the dispatch core needs from execution environments and from whoever supplies them.

Two providers implement `EnvironmentProvider`: local processes (dev mode and tests,
`kubelambda.gateway.local`) and warm pods claimed from the operator's pools (cluster mode,
`kubelambda.gateway.cluster.provider`). The pool and the invoker only ever see these protocols.
A provider specializes with the whole `Target` that name resolution produced, so a pod provider
knows the shape it must claim without looking the function up again.
"""

from __future__ import annotations

from typing import Any, Protocol

from kubelambda.runtime.spec import InvokeRequest, InvokeResult
from kubelambda.runtime.stream import ResponseStream
from kubelambda.serving.target import InitType, Target


class EnvironmentHandle(Protocol):
    """One execution environment, local or remote: one invocation at a time."""

    @property
    def alive(self) -> bool: ...

    async def invoke(
        self, request: InvokeRequest, stream: ResponseStream | None = None
    ) -> InvokeResult: ...

    async def stop(self) -> None: ...


class EnvironmentProvider(Protocol):
    async def start_environment(self, runtime: str) -> EnvironmentHandle:
        """A generic (unspecialized) environment for the runtime, ready to specialize."""
        ...

    # `Any`: each provider takes back only the handles it made, a narrower type than the protocol.
    async def specialize(self, env: Any, target: Target, init: InitType) -> None:
        """Make `env` serve `target`; raises when it cannot (the pool discards `env` then)."""
        ...

    async def stop_environment(self, env: Any) -> None: ...

    async def stop_all(self) -> None: ...
