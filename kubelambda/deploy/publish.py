"""Publishing a version and moving an alias, through the Lambda operations, against a cluster
(the control service over the API server) or a gateway (boto3): the same calls either way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from kubelambda.serving.control.operations import snake
from kubelambda.serving.errors import LambdaError

# (operation, parameters) -> the answer; raises LambdaError (or botocore's ClientError).
Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any] | None]]


def boto_call(client: Any) -> Call:
    """A `Call` over a boto3 Lambda client; its ClientErrors become LambdaErrors."""
    from botocore.exceptions import ClientError

    async def call(operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
        try:
            answer: dict[str, Any] = await asyncio.to_thread(
                getattr(client, snake(operation)), **params
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "ServiceException"))
            raise _error(code, str(error.get("Message", exc))) from None
        answer.pop("ResponseMetadata", None)
        return answer

    return call


def _error(code: str, message: str) -> LambdaError:
    from kubelambda.serving.errors import AUTH_ERRORS, ERRORS

    return LambdaError(
        code if code in ERRORS or code in AUTH_ERRORS else "ServiceException", message
    )


async def publish(
    call: Call, function: str, alias: str | None, description: str | None = None
) -> tuple[str, str | None]:
    """Publishes $LATEST; points `alias` at it (creating the alias when missing).
    Returns (version, what happened to the alias)."""
    params: dict[str, Any] = {"FunctionName": function}
    if description:
        params["Description"] = description
    published = await call("PublishVersion", params)
    assert published is not None
    version = str(published["Version"])
    if alias is None:
        return version, None
    try:
        await call("GetAlias", {"FunctionName": function, "Name": alias})
    except LambdaError as exc:
        if exc.code != "ResourceNotFoundException":
            raise
        await call(
            "CreateAlias", {"FunctionName": function, "Name": alias, "FunctionVersion": version}
        )
        return version, "created"
    await call(
        "UpdateAlias",
        {"FunctionName": function, "Name": alias, "FunctionVersion": version, "RoutingConfig": {}},
    )
    return version, "moved"


async def wait_active(
    call: Call, function: str, qualifier: str | None, seconds: float
) -> dict[str, Any]:
    """Polls GetFunctionConfiguration until the state settles (Active or Failed) and the last
    update is done; returns the configuration (a timeout returns the last one seen)."""
    params: dict[str, Any] = {"FunctionName": function}
    if qualifier:
        params["Qualifier"] = qualifier
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        config = await call("GetFunctionConfiguration", params)
        assert config is not None
        settled = config.get("State") in ("Active", "Failed") and config.get(
            "LastUpdateStatus"
        ) in ("Successful", "Failed", None)
        if settled or loop.time() > deadline:
            return config
        await asyncio.sleep(0.5)
