"""The Lambda Runtime API (AWS_LAMBDA_RUNTIME_API) that a runtime process polls and answers.

Routes: GET /2018-06-01/runtime/invocation/next, POST …/invocation/{id}/response, POST
…/invocation/{id}/error and POST /2018-06-01/runtime/init/error, with Lambda's headers, status
codes and error bodies (202 {"status":"OK"}; 400 InvalidRequestID for an id that is not the one
in flight; 403 InvalidStateTransition when no invocation awaits an answer, e.g. a response posted
twice; 413 RequestEntityTooLarge over 6 MiB). It is the warm-invoke hot path, so it runs on
aiohttp's low-level server with no router, middleware or access log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from kubelambda.runtime.errors import control_error
from kubelambda.runtime.limits import MAX_RESPONSE_BYTES, STREAMED_RESPONSE_LIMIT
from kubelambda.runtime.stream import RESPONSE_MODE, STREAMING, ResponseStream

PREFIX = "/2018-06-01/runtime/"
INVOCATION = PREFIX + "invocation/"
NEXT = INVOCATION + "next"
INIT_ERROR = PREFIX + "init/error"
_ACCEPTED = b'{"status":"OK"}'
_JSON = "application/json"


# "response", "error" and "too_large": the runtime answered; "timeout" and "exit": the agent
# ended the invocation itself.
EndingKind = Literal["response", "error", "too_large", "timeout", "exit"]


@dataclass(slots=True)
class Ending:
    """How one invocation ended in the Runtime API (the gateway's `Outcome` is the whole call)."""

    kind: EndingKind
    body: bytes = b""
    error_type: str | None = None
    size: int = 0
    returncode: int = 0
    streamed: bool = False  # the body went to the invocation's ResponseStream as it came


class PendingInvocation:
    """One invocation on its way to the runtime; `outcome` resolves when it is answered."""

    __slots__ = ("headers", "outcome", "payload", "request_id", "stream")

    def __init__(
        self,
        request_id: str,
        payload: bytes,
        headers: dict[str, str],
        stream: ResponseStream | None = None,
    ) -> None:
        self.request_id = request_id
        self.payload = payload
        self.headers = headers
        self.stream = stream
        self.outcome: asyncio.Future[Ending] = asyncio.get_running_loop().create_future()


def _json(status: int, error_type: str, message: str) -> web.Response:
    body = json.dumps(control_error(error_type, message)).encode()
    return web.Response(status=status, body=body, content_type=_JSON)


def _transition(current: str, target: str) -> web.Response:
    return _json(
        403,
        "InvalidStateTransition",
        f"State transition from {current} to {target} failed for runtime. "
        "Error: State transition is not allowed",
    )


def _content_type(request: BaseRequest) -> str:
    return request.headers.get("Content-Type", "application/octet-stream")


def _stream_broke(exc: BaseException) -> bytes:
    message = f"The runtime's response stream broke off: {exc!r}"
    return json.dumps({"errorMessage": message, "errorType": "Runtime.StreamError"}).encode()


async def _discard(request: BaseRequest) -> None:
    """Read an oversized body to its end, so the runtime (which sends all before reading the
    answer) gets its 413 on a healthy connection."""
    while await request.content.readany():
        pass


class RuntimeApi:
    """The Runtime API server of one environment; one runtime process generation at a time."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_ready: Callable[[], None],
        on_init_error: Callable[[bytes, str | None], None],
    ) -> None:
        self._host, self._port = host, port
        self._on_ready = on_ready
        self._on_init_error = on_init_error
        self._runner: web.ServerRunner | None = None
        self.address = ""
        self.reset()

    async def start(self) -> None:
        # keepalive_timeout: a runtime's connection sits idle for a whole invocation (<= 900 s).
        server = web.Server(
            self._handle,
            request_factory=self._make_request,
            access_log=None,
            keepalive_timeout=3600.0,
        )
        self._runner = web.ServerRunner(server, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        await site.start()
        assert self._runner.addresses, "the Runtime API must be bound"
        host, port = self._runner.addresses[0][:2]
        self.address = f"{host}:{port}"

    async def close(self) -> None:
        self.reset()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def reset(self) -> None:
        """Forget the previous runtime process: a new one starts in init, with nothing queued."""
        waiter = getattr(self, "_waiter", None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._ready_seen = False
        self._queued: PendingInvocation | None = None
        self._waiter: asyncio.Future[PendingInvocation | None] | None = None
        self._current: PendingInvocation | None = None
        self._answered = False

    def dispatch(self, invocation: PendingInvocation) -> None:
        """Make `invocation` the answer to the runtime's (pending or next) /next."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            self._deliver(invocation)
            waiter.set_result(invocation)
        else:
            self._queued = invocation

    def abandon(self) -> None:
        """The agent ended the invocation itself (timeout, exit); later answers are refused."""
        self._queued = None
        if self._current is not None:
            self._current = None
            self._answered = True

    def _deliver(self, invocation: PendingInvocation) -> None:
        self._current = invocation
        self._answered = False

    def _make_request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> BaseRequest:
        loop = asyncio.get_running_loop()
        return BaseRequest(
            message, payload, protocol, writer, task, loop, client_max_size=MAX_RESPONSE_BYTES
        )

    async def _handle(self, request: BaseRequest) -> web.StreamResponse:
        path = request.raw_path
        if path == NEXT and request.method == "GET":
            return await self._next()
        if path.startswith(INVOCATION) and request.method == "POST":
            request_id, _, verb = path[len(INVOCATION) :].partition("/")
            if verb in ("response", "error"):
                return await self._answer(request, request_id, verb)
        if path == INIT_ERROR and request.method == "POST":
            return await self._init_error(request)
        return _json(404, "NotFound", f"{request.method} {path} is not a Runtime API route")

    async def _next(self) -> web.StreamResponse:
        if not self._ready_seen:
            self._ready_seen = True
            self._on_ready()
        if self._current is not None:
            return _transition("Running", "Ready")
        invocation = self._queued
        if invocation is not None:
            self._queued = None
            self._deliver(invocation)
        else:
            if self._waiter is not None and not self._waiter.done():
                return _transition("Ready", "Ready")
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            invocation = await waiter
            if invocation is None:  # the agent reset this runtime generation
                return _json(500, "InternalServerError", "Internal Server Error")
        return web.Response(body=invocation.payload, headers=invocation.headers)

    async def _answer(self, request: BaseRequest, request_id: str, verb: str) -> web.Response:
        target = "InvocationResponse" if verb == "response" else "InvocationErrorResponse"
        current = self._current
        if current is None:
            return _transition("RuntimeResponseSentState" if self._answered else "Ready", target)
        if request_id != current.request_id:
            return _json(400, "InvalidRequestID", "Invalid request ID")
        if verb == "response" and request.headers.get(RESPONSE_MODE, "").lower() == STREAMING:
            return await self._streamed(request, current)
        length = request.content_length
        if length is not None and length > MAX_RESPONSE_BYTES:
            await _discard(request)
            return self._too_large(current, length)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            await _discard(request)
            return self._too_large(current, MAX_RESPONSE_BYTES + 1)
        if self._current is not current:  # abandoned (timed out) while the body arrived
            return _transition("RuntimeResponseSentState", target)
        self._current = None
        self._answered = True
        if not current.outcome.done():
            if verb == "response":
                current.outcome.set_result(Ending("response", body))
            else:
                error_type = request.headers.get("Lambda-Runtime-Function-Error-Type")
                current.outcome.set_result(Ending("error", body, error_type))
        return web.Response(status=202, body=_ACCEPTED, content_type=_JSON)

    async def _streamed(self, request: BaseRequest, current: PendingInvocation) -> web.Response:
        """A response in streaming mode: each chunk goes on as it arrives.

        The invocation stays current while the body flows, so a timeout still ends it. A body
        that breaks off is the function's error. (aiohttp's parser drops HTTP trailers, so a
        runtime's error trailers are not seen here; see docs/architecture.md.)
        """
        stream = current.stream
        limit = STREAMED_RESPONSE_LIMIT if stream is not None else MAX_RESPONSE_BYTES
        parts: list[bytes] = []
        size = 0
        begun = False
        try:
            async for chunk in request.content.iter_any():
                if current.outcome.done() or self._current is not current:
                    return _transition("RuntimeResponseSentState", "InvocationResponse")
                size += len(chunk)
                if size > limit:
                    await _discard(request)
                    return self._too_large(current, size)
                if stream is None:
                    parts.append(chunk)
                    continue
                if not begun:
                    begun = True
                    await stream.begin(_content_type(request))
                await stream.write(chunk)
        except Exception as exc:  # aiohttp's payload errors: the runtime broke the body off
            ending = Ending("error", _stream_broke(exc), "Runtime.StreamError", streamed=begun)
            self._settle(current, ending)
            return _json(400, "StreamError", "the response stream broke off")
        if stream is not None and not begun:
            await stream.begin(_content_type(request))
        if self._current is not current:
            return _transition("RuntimeResponseSentState", "InvocationResponse")
        self._settle(current, Ending("response", b"".join(parts), streamed=stream is not None))
        return web.Response(status=202, body=_ACCEPTED, content_type=_JSON)

    def _settle(self, current: PendingInvocation, ending: Ending) -> None:
        self._current = None
        self._answered = True
        if not current.outcome.done():
            current.outcome.set_result(ending)

    def _too_large(self, current: PendingInvocation, size: int) -> web.Response:
        self._current = None
        self._answered = True
        if not current.outcome.done():
            current.outcome.set_result(Ending("too_large", b"", size=size))
        return _json(
            413,
            "RequestEntityTooLarge",
            f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
        )

    async def _init_error(self, request: BaseRequest) -> web.Response:
        if self._ready_seen:
            return _transition("Ready", "InitError")
        body = await request.read()
        self._on_init_error(body, request.headers.get("Lambda-Runtime-Function-Error-Type"))
        return web.Response(status=202, body=_ACCEPTED, content_type=_JSON)
