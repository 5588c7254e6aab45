"""Routes for the operations of botocore's Lambda model the control service serves.

The paths, methods, status codes and where each request member travels (path, query string,
header or JSON body) are read from botocore's service model, the same model boto3 and the AWS
CLI serialize with, so the two cannot disagree. A served operation (`SERVED`) goes to the
control service; the rest are left to `gateway/operations.py`, which answers each with a JSON
error naming it (so does a route here when the operation it resolves to is not served: one path
and method can carry two operations told apart by the query). Bodies are read by the gateway's
one bounded reader (`http.body_once`, shared with the SigV4 check). Handlers stay thin: parse
members, call, serialize.

The caller: authentication (when enabled) stores a `Caller` under `CALLER` in the request; the
cluster store then acts as that caller, so Kubernetes RBAC decides who may deploy. The reads the
guard authorizes itself (`auth/guard.py` ROUTES) run as the gateway, and a caller who may invoke
but not `get` sees them without environment variables.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

from aiohttp import web

from kubelambda.gateway.auth.guard import CALLER, GUARD, IDENTITY, may_read
from kubelambda.gateway.auth.model import Identity
from kubelambda.gateway.http import body_once
from kubelambda.serving.control.operations import DATA_PLANE
from kubelambda.serving.control.service import ControlService
from kubelambda.serving.control.store import Caller
from kubelambda.serving.errors import LambdaError, unserved_operation

UPLOADS = ("CreateFunction", "UpdateFunctionCode", "PublishLayerVersion")
UPLOAD_LIMIT = 70_167_211  # Lambda's request limit for a 50 MB zip, base64 in JSON
BODY_LIMIT = 6_291_456
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@cache
def lambda_model() -> Any:
    """botocore's Lambda service model (a botocore.model.ServiceModel)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("lambda")


def route_table() -> dict[tuple[str, str], list[tuple[Any, dict[str, str]]]]:
    """(method, aiohttp path) -> [(operation model, the query marker it needs)]."""
    model = lambda_model()
    table: dict[tuple[str, str], list[tuple[Any, dict[str, str]]]] = defaultdict(list)
    for name in model.operation_names:
        if name in DATA_PLANE:
            continue
        op = model.operation_model(name)
        path, _, query = op.http["requestUri"].partition("?")
        path = re.sub(r"\{(\w+)\+?\}", r"{\1}", path)
        marker = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
        table[(op.http["method"], path)].append((op, marker))
    return table


def _choose(ops: list[tuple[Any, dict[str, str]]], request: web.Request) -> Any:
    """Two operations share a path and method only when a query marker tells them apart."""
    for op, marker in sorted(ops, key=lambda pair: -len(pair[1])):
        if all(request.query.get(k) == v for k, v in marker.items()):
            return op
    return ops[0][0]


def _scalar(shape: Any, raw: str) -> Any:
    if shape.type_name in ("integer", "long"):
        try:
            return int(raw)
        except ValueError:
            raise LambdaError(
                "InvalidParameterValueException", f"{raw!r} is not an integer"
            ) from None
    if shape.type_name == "boolean":
        return raw.lower() == "true"
    return raw


async def _body(request: web.Request, limit: int, operation: str) -> dict[str, Any]:
    raw = await body_once(request, limit, operation)
    if not raw.strip():
        return {}
    try:
        found = json.loads(raw)
    except ValueError as exc:
        raise LambdaError(
            "InvalidRequestContentException", f"Could not parse request body into json: {exc}"
        ) from None
    if not isinstance(found, dict):
        raise LambdaError("InvalidRequestContentException", "The request body must be an object")
    return found


async def parse(request: web.Request, op: Any) -> dict[str, Any]:
    """The operation's input members, from wherever the model says they travel."""
    shape = op.input_shape
    params: dict[str, Any] = {}
    if shape is None:
        return params
    has_body = any(
        m.serialization.get("location") in (None, "") for m in shape.members.values()
    ) and request.method in ("POST", "PUT")
    if has_body:
        limit = UPLOAD_LIMIT if op.name in UPLOADS else BODY_LIMIT
        params.update(await _body(request, limit, op.name))
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        where = member.serialization.get("name", name)
        if location == "uri" and where in request.match_info:
            params[name] = _scalar(member, request.match_info[where])  # e.g. a VersionNumber
        elif location == "querystring":
            if member.type_name == "list":
                values = request.query.getall(where, [])
                if values:
                    params[name] = values
            elif where in request.query:
                params[name] = _scalar(member, request.query[where])
        elif location == "header" and where in request.headers:
            params[name] = _scalar(member, request.headers[where])
    return params


class ControlRoutes:
    def __init__(self, service: ControlService) -> None:
        self.service = service

    def add_to(self, app: web.Application) -> None:
        """Route every path and method that carries a served operation."""
        for (method, path), ops in route_table().items():
            if not any(self.service.serves(op.name) for op, _ in ops):
                continue  # gateway/operations.py answers it
            handler = self._handler(ops)
            app.router.add_route(method, path, handler)
            if not path.endswith("/") and not path.endswith("}"):
                app.router.add_route(method, path + "/", handler)

    def _handler(self, ops: list[tuple[Any, dict[str, str]]]) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            op = _choose(ops, request)
            if not self.service.serves(op.name):
                raise unserved_operation(op.name, request.method, request.path)
            params = await parse(request, op)
            guard = request.config_dict.get(GUARD)
            identity = request.get(IDENTITY)
            caller = request.get(CALLER)  # set by the guard for what it did not authorize itself
            if guard is not None and caller is not None and not guard.store_authorizes:
                assert isinstance(identity, Identity)
                function = params.get("FunctionName")
                name = function if isinstance(function, str) else None
                await guard.require_operation(identity, op.name, request.method, name)
            result = await self.service.call(
                op.name, params, caller if isinstance(caller, Caller) else None
            )
            if result is None:
                return web.Response(status=204)
            if not may_read(request):
                result = without_environment(op.name, result)
            status = int(op.http.get("responseCode") or 200)
            return web.json_response(result, status=status)

        return handle


def without_environment(operation: str, result: dict[str, Any]) -> dict[str, Any]:
    """`result` with the functions' environment variables left out, for a caller who may invoke a
    function but not read it (Kubernetes verb `get`)."""
    configs: list[Any]
    if operation == "GetFunction":
        configs = [result.get("Configuration")]
    elif operation == "GetFunctionConfiguration":
        configs = [result]
    elif operation == "ListFunctions":
        configs = list(result.get("Functions") or [])
    elif operation == "ListVersionsByFunction":
        configs = list(result.get("Versions") or [])
    else:
        return result
    for config in configs:
        if isinstance(config, dict):
            config.pop("Environment", None)
    return result
