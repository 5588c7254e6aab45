"""The gateway's HTTP edge: bounded, timed reading of requests, and Lambda-shaped protocol errors.

- A connection must deliver a request's headers within `HEADER_TIMEOUT` of its first byte (or of
  being opened): a slow-header client (slowloris) is closed, however many there are.
- `read_body` is the one reader of request bodies: it streams (a body that came whole with its
  headers is taken as it is), refuses a declared length over the limit before reading anything,
  stops a chunked body as soon as it passes the limit, and bounds the time between chunks and
  for the whole body. A refusal closes the connection, so the rest of an oversized upload is
  never read. The bodies being read at once share one `BodyBudget` (a chunked body counts as
  the whole limit), so forty concurrent 11 MiB uploads cost the gateway the budget, not forty
  buffers; the others wait, unread, within their timeout. `body_once` reads through it once
  per request, so the auth guard (which needs the body for SigV4) and the handler after it
  share one bounded read.
- Malformed HTTP (a bad request line, a header too long) is answered as Lambda's JSON error
  with `x-amzn-ErrorType`, not aiohttp's plain text.

It hooks aiohttp's `RequestHandler` at `connection_made`, `data_received` and `handle_error`,
and reads two of its private attributes (`_request_count`: a request's headers were parsed;
`_waiter`: the connection waits for a request), as `GuardedServer` reads `web.Server`'s
`_loop` and `_kwargs`. aiohttp is pinned in constraints.txt, and
`tests/component/gateway/test_hardening.py` proves each guard against a real socket.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from kubelambda.serving.errors import LambdaError, too_large

HEADER_TIMEOUT = 10.0  # seconds from a request's first byte (or the connection) to its headers
BODY_IDLE_TIMEOUT = 10.0  # seconds a body may pause between two chunks
BODY_TIMEOUT = 120.0  # seconds for a whole body (6 MB at 50 KB/s)


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection protocol with a header deadline and JSON protocol errors."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        if self._request_count > before:  # a request's headers are complete
            self._disarm()
        elif self._header_timer is None and self._waiter is not None:
            self._arm()  # idle between requests: this byte starts the next request's headers

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_timer = asyncio.get_running_loop().call_later(
            HEADER_TIMEOUT, self._headers_late
        )

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._waiter is not None and not self._waiter.done():  # still waiting for headers
            self.force_close()
            if self.transport is not None:
                self.transport.close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)  # logs; raises if sent
        error = protocol_error(status, message or (str(exc) if exc else ""))
        response = web.Response(
            status=error.status, body=error.body(), headers=error.response_headers()
        )
        response.force_close()
        del plain
        return response


def protocol_error(status: int, detail: str) -> LambdaError:
    """The Lambda error for an HTTP-level failure aiohttp found before any handler ran."""
    if status == 413:
        return LambdaError("RequestTooLargeException", f"Request is too large: {detail}")
    if 400 <= status < 500:
        return LambdaError(
            "InvalidRequestContentException", f"The request is not valid HTTP: {detail}"
        )
    return LambdaError("ServiceException", "The gateway failed to read the request")


class GuardedServer(web.Server):
    """An aiohttp server whose connections are `GuardedRequestHandler`s."""

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """`web.AppRunner`, serving the application through `GuardedServer` connections."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = GuardedServer  # same object and state, guarded connections
        return server


BODY_BUDGET = 64 * 1024 * 1024  # bytes of request bodies being read at once, gateway-wide


class BodyBudget:
    """Bytes of bodies being read at once; a reservation waits until it fits (one always may)."""

    def __init__(self, total: int = BODY_BUDGET) -> None:
        self.total = total
        self.used = 0
        self._changed = asyncio.Condition()

    async def reserve(self, size: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.used == 0 or self.used + size <= self.total)
            self.used += size

    async def release(self, size: int) -> None:
        async with self._changed:
            self.used -= size
            self._changed.notify_all()


CLOSE = {"Connection": "close"}  # the middleware closes the connection after such an answer


def _refuse(error: LambdaError) -> LambdaError:
    """Answer, then close the connection: the rest of the body is never read."""
    error.headers.update(CLOSE)
    return error


async def read_body(
    request: web.Request,
    limit: int,
    *,
    budget: BodyBudget | None = None,
    idle_timeout: float = BODY_IDLE_TIMEOUT,
    total_timeout: float = BODY_TIMEOUT,
    operation: str = "InvokeFunction",
) -> bytes:
    """The whole body of `request`, at most `limit` bytes; LambdaError otherwise (413 as Lambda
    words it for `operation`, or 400 when the body stalls)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _refuse(too_large(declared, limit, operation))
    if declared == 0:
        return b""
    content = request.content
    if declared is not None and content.is_eof() and content.exception() is None:
        # The whole body came with the headers (a small call's usual case): it is in memory
        # already, so there is nothing to wait for and nothing for the budget to hold back.
        return content.read_nowait()
    share = declared if declared is not None else limit
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total_timeout
    try:
        if budget is not None:  # meanwhile aiohttp's flow control leaves the bytes unread
            async with asyncio.timeout(total_timeout):
                await budget.reserve(share)
    except TimeoutError:
        raise _refuse(_late(idle_timeout, total_timeout)) from None
    try:
        return await _read(request, limit, deadline, idle_timeout, total_timeout, operation)
    finally:
        if budget is not None:
            await budget.release(share)


def _late(idle_timeout: float, total_timeout: float) -> LambdaError:
    return LambdaError(
        "InvalidRequestContentException",
        f"The request body did not arrive in time (at most {idle_timeout:g} s between "
        f"chunks, {total_timeout:g} s in all)",
    )


async def _read(
    request: web.Request,
    limit: int,
    deadline: float,
    idle_timeout: float,
    total_timeout: float,
    operation: str,
) -> bytes:
    loop = asyncio.get_running_loop()
    buffer = bytearray()
    content = request.content
    try:
        while True:
            wait = min(idle_timeout, deadline - loop.time())
            if wait <= 0:
                raise TimeoutError
            async with asyncio.timeout(wait):
                chunk = await content.readany()
            if not chunk:
                break
            buffer += chunk
            if len(buffer) > limit:
                size = len(buffer)
                buffer.clear()  # the error's traceback keeps this frame: not its buffer too
                raise _refuse(too_large(size, limit, operation))
    except TimeoutError:
        buffer.clear()
        raise _refuse(_late(idle_timeout, total_timeout)) from None
    return bytes(buffer)


BODIES: web.AppKey[BodyBudget] = web.AppKey("bodies", BodyBudget)
_BODY = "kubelambda.body"  # a request's body once read (the guard reads it to check SigV4)


async def body_once(request: web.Request, limit: int, operation: str = "InvokeFunction") -> bytes:
    """`read_body` under the application's `BODIES` budget, read at most once per request: the
    guard and the handler share what the first of them read (each with its own limit)."""
    body: bytes | None = request.get(_BODY)
    if body is None:
        body = await read_body(
            request, limit, budget=request.config_dict.get(BODIES), operation=operation
        )
        request[_BODY] = body
    elif len(body) > limit:
        raise _refuse(too_large(len(body), limit, operation))
    return body


def refuse_unread(request: web.Request, error: LambdaError) -> LambdaError:
    """`error`, closing the connection if the request's body was not read: a caller refused on
    its headers never gets the gateway to read what it sent."""
    if _BODY not in request and request.can_read_body:
        return _refuse(error)
    return error


def runner_for(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """The runner every gateway listener uses."""
    return GuardedRunner(app, access_log=None, **kwargs)
