"""Every operation of botocore's Lambda service model as a route, so none answers aiohttp's text.

The table is read from the model botocore installs (`lambda/2015-03-31/service-2.json`), so it is
complete by construction: an operation this gateway serves is routed to its handler first; every
other one gets a route that answers a Lambda-shaped error naming the operation
(`unserved_operation`). What matches no operation at all is answered by the API's middleware
(`unknown_operation`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kubelambda.serving.errors import unserved_operation

_LABEL = re.compile(r"\{([A-Za-z0-9_]+)(\+?)\}")


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str  # aiohttp's form: {Label} for one segment, {Label:.+} for a greedy label
    query: tuple[tuple[str, str], ...] = ()  # fixed query members that tell operations apart


def route_path(request_uri: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A model requestUri (`/p/{FunctionName}/x?List=ALL`) as an aiohttp path and fixed query."""
    path, _, query = request_uri.partition("?")
    fixed = tuple(
        (key, value) for key, _, value in (item.partition("=") for item in query.split("&") if item)
    )
    path = _LABEL.sub(lambda m: f"{{{m.group(1)}:.+}}" if m.group(2) else f"{{{m.group(1)}}}", path)
    return path, fixed


@functools.cache
def lambda_operations() -> tuple[Operation, ...]:
    """Every operation in botocore's Lambda model, in the model's order."""
    from botocore.loaders import Loader  # the model is read once, at startup

    model: dict[str, Any] = Loader().load_service_model("lambda", "service-2")
    found = []
    for name, operation in model["operations"].items():
        http = operation["http"]
        path, query = route_path(http["requestUri"])
        found.append(Operation(name, http["method"], path, query))
    return tuple(found)


def _unserved(
    choices: list[Operation],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    # The most specific first: an operation told apart by its query wins when that query is set.
    ordered = sorted(choices, key=lambda op: -len(op.query))

    async def answer(request: web.Request) -> web.StreamResponse:
        for op in ordered:
            if all(request.query.get(k) == v for k, v in op.query):
                raise unserved_operation(op.name, request.method, request.path)
        raise unserved_operation(ordered[-1].name, request.method, request.path)

    return answer


def _shape(path: str) -> str:
    """A path with its labels' names dropped: `{name}` and `{FunctionName}` are one route."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def add_unserved_routes(router: web.UrlDispatcher) -> int:
    """Route every model operation the router does not serve yet; returns how many."""
    served = {
        (route.method, _shape(route.resource.canonical))
        for route in router.routes()
        if route.resource is not None
    }
    pending: dict[tuple[str, str], list[Operation]] = {}
    for op in lambda_operations():
        key = (op.method, op.path)
        if (op.method, _shape(op.path)) not in served:
            pending.setdefault(key, []).append(op)
    for (method, path), choices in pending.items():
        router.add_route(method, path, _unserved(choices))
    return sum(len(choices) for choices in pending.values())
