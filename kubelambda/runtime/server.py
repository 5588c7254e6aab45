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

from kubelambda.addresses import host_port
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


@dataclass(slots=True)
class Reply:
    """One answer of the Runtime API, whatever carries it (HTTP here, a pipe in `channel.py`).

    `headers` set: the answer to /next (the event and its Lambda-Runtime-* headers); unset: a
    JSON status or error body."""

    status: int
    body: bytes
    headers: dict[str, str] | None = None


def _json(status: int, error_type: str, message: str) -> Reply:
    return Reply(status, json.dumps(control_error(error_type, message)).encode())


def _transition(current: str, target: str) -> Reply:
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


ACCEPTED = Reply(202, _ACCEPTED)
RESET = _json(500, "InternalServerError", "Internal Server Error")
Route = Literal["next", "response", "error", "init_error", "unknown"]


def route(method: str, path: str) -> tuple[Route, str]:
    """Which Runtime API call `method path` is, and the request id it names (if any)."""
    if path == NEXT and method == "GET":
        return "next", ""
    if path.startswith(INVOCATION) and method == "POST":
        request_id, _, verb = path[len(INVOCATION) :].partition("/")
        if verb == "response":
            return "response", request_id
        if verb == "error":
            return "error", request_id
    if path == INIT_ERROR and method == "POST":
        return "init_error", ""
    return "unknown", ""


def not_found(method: str, path: str) -> Reply:
    return _json(404, "NotFound", f"{method} {path} is not a Runtime API route")


def _http(reply: Reply) -> web.Response:
    if reply.headers is not None:
        return web.Response(body=reply.body, headers=reply.headers)
    return web.Response(status=reply.status, body=reply.body, content_type=_JSON)


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
        self.address = host_port(host, port)

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
        self._streaming: PendingInvocation | None = None  # its response body is being read
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
        method, path = request.method, request.raw_path
        kind, request_id = route(method, path)
        if kind == "next":
            taken = self.take_next()
            if isinstance(taken, asyncio.Future):
                taken = self.next_reply(await taken)
            return _http(taken)
        if kind == "response" or kind == "error":
            return _http(await self._answer(request, request_id, kind))
        if kind == "init_error":
            if self._ready_seen:
                return _http(self.init_error(b"", None))
            body = await request.read()
            error_type = request.headers.get("Lambda-Runtime-Function-Error-Type")
            return _http(self.init_error(body, error_type))
        return _http(not_found(method, path))

    # -- the transport-neutral core: HTTP above and the pipe channel both call these --------
    def take_next(self) -> Reply | asyncio.Future[PendingInvocation | None]:
        """The runtime asks for its next event: an answer now, or a future that the next
        `dispatch` (or a `reset`, with None) resolves; turn it into a Reply with next_reply."""
        if not self._ready_seen:
            self._ready_seen = True
            self._on_ready()
        current = self._current
        if current is not None and current is not self._streaming:
            return _transition("Running", "Ready")
        # A streamed response still open (our bootstrap streams over HTTP, even on the pipe,
        # and asks for its next event on the pipe: after a stream it broke off, that request
        # may come before this server has read the break): the /next waits, as for any event.
        invocation = self._queued
        if invocation is not None:
            self._queued = None
            self._deliver(invocation)
            return self.next_reply(invocation)
        if self._waiter is not None and not self._waiter.done():
            return _transition("Ready", "Ready")
        waiter: asyncio.Future[PendingInvocation | None]
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        return waiter

    def running(self) -> PendingInvocation | None:
        """The invocation delivered and not answered yet, if any."""
        return self._current

    @staticmethod
    def next_reply(invocation: PendingInvocation | None) -> Reply:
        if invocation is None:  # the agent reset this runtime generation
            return RESET
        return Reply(200, invocation.payload, invocation.headers)

    def answering(self, request_id: str, verb: str) -> PendingInvocation | Reply:
        """The invocation a response or error for `request_id` answers, or the refusal."""
        current = self._current
        if current is None:
            target = "InvocationResponse" if verb == "response" else "InvocationErrorResponse"
            return _transition("RuntimeResponseSentState" if self._answered else "Ready", target)
        if request_id != current.request_id:
            return _json(400, "InvalidRequestID", "Invalid request ID")
        return current

    def answer(
        self, current: PendingInvocation, verb: str, body: bytes, error_type: str | None
    ) -> Reply:
        """Record the runtime's response or error (its body read whole) for `current`."""
        if self._current is not current:  # abandoned (timed out) while the body arrived
            target = "InvocationResponse" if verb == "response" else "InvocationErrorResponse"
            return _transition("RuntimeResponseSentState", target)
        self._current = None
        self._answered = True
        if not current.outcome.done():
            if verb == "response":
                current.outcome.set_result(Ending("response", body))
            else:
                current.outcome.set_result(Ending("error", body, error_type))
        return ACCEPTED

    async def _streamed(self, request: BaseRequest, current: PendingInvocation) -> Reply:
        """A response in streaming mode: each chunk goes on as it arrives.

        The invocation stays current while the body flows, so a timeout still ends it. A body
        that breaks off is the function's error. (aiohttp's parser drops HTTP trailers, so a
        runtime's error trailers are not seen here; see docs/architecture.md.)
        """
        self._streaming = current
        try:
            return await self._stream_body(request, current)
        finally:
            if self._streaming is current:
                self._streaming = None

    async def _stream_body(self, request: BaseRequest, current: PendingInvocation) -> Reply:
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
                    return self.too_large(current, size)
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
        return ACCEPTED

    def _settle(self, current: PendingInvocation, ending: Ending) -> None:
        if self._current is current:  # not one delivered since (or abandoned)
            self._current = None
            self._answered = True
        if not current.outcome.done():
            current.outcome.set_result(ending)

    def too_large(self, current: PendingInvocation, size: int) -> Reply:
        self._current = None
        self._answered = True
        if not current.outcome.done():
            current.outcome.set_result(Ending("too_large", b"", size=size))
        return _json(
            413,
            "RequestEntityTooLarge",
            f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
        )

    def init_error(self, body: bytes, error_type: str | None) -> Reply:
        if self._ready_seen:
            return _transition("Ready", "InitError")
        self._on_init_error(body, error_type)
        return ACCEPTED

    async def _answer(self, request: BaseRequest, request_id: str, verb: str) -> Reply:
        current = self.answering(request_id, verb)
        if isinstance(current, Reply):
            return current
        if verb == "response" and request.headers.get(RESPONSE_MODE, "").lower() == STREAMING:
            return await self._streamed(request, current)
        length = request.content_length
        if length is not None and length > MAX_RESPONSE_BYTES:
            await _discard(request)
            return self.too_large(current, length)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            await _discard(request)
            return self.too_large(current, MAX_RESPONSE_BYTES + 1)
        error_type = request.headers.get("Lambda-Runtime-Function-Error-Type")
        return self.answer(current, verb, body, error_type)
