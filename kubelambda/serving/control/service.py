"""The control service: one method per served Lambda operation, over an object store and a
code store, with every store refusal answered as the Lambda error botocore expects.

`call` is the one entry point the routes use. A mutating call returns once the backend has
settled (dev mode: the gateway serves the change), so a client that updates and then invokes
meets what it wrote; its answer still shows Lambda's state at the time of the write (Pending,
InProgress), and the CLI's waiters see the transitions.
"""

from __future__ import annotations

from typing import Any

from kubelambda.serving.control.aliases import AliasOps
from kubelambda.serving.control.base import Ctx
from kubelambda.serving.control.configs import ConfigOps
from kubelambda.serving.control.functions import FunctionOps
from kubelambda.serving.control.layers import LayerOps
from kubelambda.serving.control.mappings import MappingOps
from kubelambda.serving.control.operations import SERVED, snake
from kubelambda.serving.control.store import (
    AlreadyExists,
    Caller,
    Denied,
    Invalid,
    Missing,
    ReadOnly,
    Stale,
    StoreError,
)
from kubelambda.serving.control.translate import Params
from kubelambda.serving.errors import LambdaError

READS = ("Get", "List")


class ControlService(LayerOps, FunctionOps, AliasOps, ConfigOps, MappingOps):
    def serves(self, operation: str) -> bool:
        return operation in SERVED and callable(getattr(self, snake(operation), None))

    async def call(
        self, operation: str, params: Params, caller: Caller | None = None
    ) -> dict[str, Any] | None:
        """Serves one operation; raises LambdaError."""
        if not self.serves(operation):
            raise LambdaError(
                "InvalidParameterValueException",
                f"The {operation} operation is not served by kubelambda",
                extra={"Operation": operation},
            )
        method = getattr(self, snake(operation))
        ctx = Ctx(self.backend.acting_as(caller), caller)
        try:
            result: dict[str, Any] | None = await method(ctx, params)
        except StoreError as exc:
            raise store_error(exc) from None
        if not operation.startswith(READS):
            await self.backend.settled()
        return result


def store_error(exc: StoreError) -> LambdaError:
    if isinstance(exc, ReadOnly | AlreadyExists):
        return LambdaError("ResourceConflictException", str(exc) or "The resource already exists")
    if isinstance(exc, Stale):
        return LambdaError(
            "PreconditionFailedException",
            "The Revision Id provided does not match the latest Revision Id. Read the resource "
            "again to retrieve the latest Revision Id",
        )
    if isinstance(exc, Missing):
        return LambdaError("ResourceNotFoundException", str(exc) or "The resource does not exist")
    if isinstance(exc, Denied):
        return LambdaError("AccessDeniedException", str(exc))
    if isinstance(exc, Invalid):
        return LambdaError("InvalidParameterValueException", str(exc))
    return LambdaError("ServiceException", str(exc))
