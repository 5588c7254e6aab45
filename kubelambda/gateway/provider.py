"""What the dispatch core needs from an execution environment and from whoever supplies them.

Two providers implement `EnvironmentProvider`: local processes (dev mode and tests, in
`kubelambda.runtime.provider`) and warm pods claimed from the operator's pools (cluster mode).
The pool and the invoker only ever see these protocols.
"""

from __future__ import annotations

from typing import Any, Protocol

from kubelambda.runtime.spec import EnvironmentSpec, InvokeRequest, InvokeResult


class EnvironmentHandle(Protocol):
    """One execution environment, local or remote: one invocation at a time."""

    @property
    def alive(self) -> bool: ...

    async def specialize(self, spec: EnvironmentSpec) -> None: ...

    async def invoke(self, request: InvokeRequest) -> InvokeResult: ...

    async def stop(self) -> None: ...


class EnvironmentProvider(Protocol):
    async def start_environment(self, runtime: str) -> EnvironmentHandle:
        """A generic (unspecialized) environment for the runtime, ready to specialize."""
        ...

    # `Any`: each provider takes back only the handles it made, a narrower type than the protocol.
    async def stop_environment(self, env: Any) -> None: ...

    async def stop_all(self) -> None: ...
