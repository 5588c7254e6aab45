"""`GET /kubelambda/v1/functions/{name}/logs`: a function's recent lines, and the next ones.

Query: `since` (seconds back, or 10m/2h), `follow` (true: keep the response open and stream each
new line as it is written, until the client leaves or the gateway stops). The body is NDJSON,
one `{"time", "version", "line"}` per line; the name is resolved as Invoke resolves it (`ns.name`
or the default namespace), an unknown function is Lambda's ResourceNotFoundException.
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
    # Set as the server shuts down: a follow ends its stream then, rather than holding the
    # shutdown until its next heartbeat (aiohttp waits for running handlers).
    stopping = asyncio.Event()

    async def stop_following(_: web.Application) -> None:
        stopping.set()

    async def _next(queue: asyncio.Queue[LogEntry]) -> LogEntry | None:
        """The next entry; None for a heartbeat, or once the server is stopping."""
        getter = asyncio.ensure_future(queue.get())
        stopped = asyncio.ensure_future(stopping.wait())
        done, _ = await asyncio.wait(
            {getter, stopped}, timeout=HEARTBEAT, return_when="FIRST_COMPLETED"
        )
        stopped.cancel()
        if getter in done:
            return getter.result()
        getter.cancel()
        return None

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
                following = await _next(queue)
                if following is None and stopping.is_set():
                    break
                await response.write(b"\n" if following is None else _encode(following))
        finally:
            if queue is not None:
                logbook.unfollow(ref.namespace, ref.name, queue)
        await response.write_eof()
        return response

    app.router.add_get("/kubelambda/v1/functions/{name}/logs", logs)
    app.on_shutdown.append(stop_following)
