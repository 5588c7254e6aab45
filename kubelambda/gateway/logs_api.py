"""`GET /kubelambda/v1/functions/{name}/logs`: a function's recent lines, and the next ones.

Query: `since` (seconds back, or 10m/2h), `follow` (true: keep the response open and stream each
new line as it is written). The body is NDJSON, one `{"time", "version", "line"}` per line; the
name is resolved as Invoke resolves it (`ns.name` or the default namespace), an unknown function
is Lambda's ResourceNotFoundException.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from aiohttp import web

from kubelambda.gateway.invoker import Invoker
from kubelambda.serving.errors import bad_parameter
from kubelambda.serving.logbook import LogBook, LogEntry, parse_since
from kubelambda.serving.names import parse_function_name

HEARTBEAT = 15.0  # seconds: an empty line keeps proxies from closing an idle follow


def _encode(entry: LogEntry) -> bytes:
    record = {"time": round(entry.time, 3), "version": entry.version, "line": entry.line}
    return json.dumps(record).encode() + b"\n"


def add_routes(
    app: web.Application,
    invoker: Invoker,
    logbook: LogBook,
    default_namespace: str,
    clock: Callable[[], float] = time.time,
) -> None:
    async def logs(request: web.Request) -> web.StreamResponse:
        ref = parse_function_name(request.match_info["name"], None, default_namespace)
        invoker.catalog.entry(ref.namespace, ref.name)  # ResourceNotFoundException if unknown
        since: float | None = None
        if "since" in request.query:
            try:
                since = clock() - parse_since(request.query["since"])
            except ValueError as exc:
                raise bad_parameter(f"since: {exc}") from None
        follow = request.query.get("follow", "").lower() in ("1", "true", "yes")
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        queue = logbook.follow(ref.namespace, ref.name) if follow else None
        try:
            for entry in logbook.lines(ref.namespace, ref.name, since):
                await response.write(_encode(entry))
            while queue is not None:
                try:
                    entry = await asyncio.wait_for(queue.get(), HEARTBEAT)
                except TimeoutError:
                    await response.write(b"\n")
                    continue
                await response.write(_encode(entry))
        finally:
            if queue is not None:
                logbook.unfollow(ref.namespace, ref.name, queue)
        await response.write_eof()
        return response

    app.router.add_get("/kubelambda/v1/functions/{name}/logs", logs)
