"""The agent's control HTTP API, through which the gateway drives one environment (cluster mode).

    POST /kubelambda/v1/specialize   JSON EnvironmentSpec (camelCase) -> 200 {state…}
    POST /kubelambda/v1/invoke       body = payload; metadata in headers (see `wire`) -> 200
                                     (with X-Kubelambda-Stream: a chunked body of frames)
    POST /kubelambda/v1/stop         graceful stop of the runtime -> 200
    POST /kubelambda/v1/retire       the same, only while warm (never specialized) -> 200, or
                                     409 EnvironmentStateError: the operator's side of the lock
                                     a specialization takes (the first of the two wins)
    GET  /kubelambda/v1/state        the environment's state document
    GET  /kubelambda/v1/channel      a WebSocket: buffered invokes as messages on one kept
                                     connection (`wire.channel_*`), cheaper than a request each
    GET  /healthz                    200 while the agent runs (from the moment its port opens)
    GET  /readyz                     200 when the environment can take work (warm or ready);
                                     503 until the agent's warm-up (runtime start, a `--spec`
                                     specialization) is done

Errors are JSON {"errorType", "errorMessage"}: 409 EnvironmentBusy (never queued) or
EnvironmentStateError, 400 InvalidSpec / CodeError / InvalidRequestContentException, 401
Unauthorized.

Authentication: given a token (the pod's `KUBELAMBDA_AGENT_TOKEN`, which the operator derives
from a key only it and the gateways hold; see `kube/agentauth.py`), every /kubelambda/v1 call
must carry `Authorization: Bearer TOKEN`, compared in constant time. The probes stay open for
the kubelet. Whoever can reach an agent without it cannot specialize or invoke it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import ValidationError

from kubelambda.runtime import wire
from kubelambda.runtime.archive import CodeError
from kubelambda.runtime.environment import Environment
from kubelambda.runtime.errors import EnvironmentBusy, EnvironmentStateError, control_error
from kubelambda.runtime.invocation import InvalidClientContext
from kubelambda.runtime.spec import EnvironmentSpec, EnvState, InvokeRequest, InvokeResult

ENVIRONMENT: web.AppKey[Environment] = web.AppKey("environment", Environment)
WARMED: web.AppKey[asyncio.Event] = web.AppKey("warmed", asyncio.Event)
TOKEN_ENV = "KUBELAMBDA_AGENT_TOKEN"  # the agent's token, set in its pod by the operator
CONTROL = "/kubelambda/v1/"
CLOSE_WAIT = 1.0  # seconds a stopping agent waits for a gateway to answer a channel's close
_SERVING = (EnvState.WARM, EnvState.READY, EnvState.BUSY, EnvState.INITIALIZING)


def state_document(env: Environment) -> dict[str, Any]:
    """What GET /kubelambda/v1/state returns (times are relative: clocks differ across pods)."""
    now = time.monotonic()
    spec = env.spec
    return {
        "state": env.state.value,
        "runtime": env.runtime,
        "address": env.address,
        "pid": env.pid,
        "alive": env.alive,
        "channel": env.carrier,  # how the runtime reaches the Runtime API: pipe or http
        "invocations": env.invocations,
        "ageSeconds": round(now - env.created_at, 3),
        "idleSeconds": round(now - env.last_used_at, 3),
        "spec": None
        if spec is None
        else {
            "namespace": spec.namespace,
            "functionName": spec.function_name,
            "functionVersion": spec.function_version,
            "functionArn": spec.function_arn,
        },
    }


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response(control_error(error_type, message), status=status)


async def _specialize(request: web.Request) -> web.Response:
    """Its answer's Server-Timing header says where the agent's own time went (read, parse,
    prepare and release), so a cold start's specialize phase can be told from its hops."""
    env = request.app[ENVIRONMENT]
    began = time.perf_counter()
    body = await request.read()
    read = time.perf_counter()
    try:
        spec = EnvironmentSpec.model_validate_json(body)
    except ValidationError as exc:
        return _error(400, "InvalidSpec", str(exc))
    parsed = time.perf_counter()
    try:
        await env.specialize(spec)
    except EnvironmentStateError as exc:
        return _error(409, "EnvironmentStateError", str(exc))
    except CodeError as exc:
        return _error(400, "CodeError", str(exc))
    done = time.perf_counter()
    timing = wire.server_timing(read=read - began, parse=parsed - read, specialize=done - parsed)
    return web.json_response(state_document(env), headers={wire.SERVER_TIMING: timing})


class _FrameStream:
    """Sends a streamed response to the gateway as frames (`wire.FRAME_*`) while it comes."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None

    async def open(self) -> web.StreamResponse:
        if self.response is None:
            self.response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            self.response.enable_chunked_encoding()
            await self.response.prepare(self.request)
        return self.response

    async def begin(self, content_type: str) -> None:
        await (await self.open()).write(wire.frame(wire.FRAME_BEGIN, content_type.encode()))

    async def write(self, chunk: bytes) -> None:
        await (await self.open()).write(wire.frame(wire.FRAME_CHUNK, chunk))


async def _run(
    env: Environment, request: InvokeRequest, stream: _FrameStream | None
) -> InvokeResult | tuple[int, dict[str, str]]:
    """One invocation: its result, or the (status, error document) the gateway is answered."""
    try:
        return await env.invoke(request, stream)
    except EnvironmentBusy as exc:
        return 409, control_error("EnvironmentBusy", str(exc))
    except EnvironmentStateError as exc:
        return 409, control_error("EnvironmentStateError", str(exc))
    except InvalidClientContext as exc:
        return 400, control_error("InvalidRequestContentException", str(exc))


def _answer_headers(env: Environment, result: InvokeResult) -> dict[str, str]:
    headers = wire.result_headers(result)
    headers[wire.STATE] = env.state.value
    return headers


async def _invoke(request: web.Request) -> web.StreamResponse:
    env = request.app[ENVIRONMENT]
    invoke_request = wire.request_from(request.headers, await request.read())
    stream = _FrameStream(request) if request.headers.get(wire.STREAM) else None
    result = await _run(env, invoke_request, stream)
    if isinstance(result, tuple):
        return web.json_response(result[1], status=result[0])
    if stream is not None:
        response = await stream.open()
        state = wire.frame(wire.FRAME_STATE, env.state.value.encode())
        await response.write(wire.result_frame(result) + state)
        await response.write_eof()
        return response
    headers = _answer_headers(env, result)
    return web.Response(body=result.payload, headers=headers, content_type="application/json")


class _Channels:
    """The open channels and whether each is in a call. aiohttp's shutdown waits for running
    handlers, and a channel's runs until its gateway closes it: a stopping agent (its pod
    deleted) closes the idle ones at once and each busy one once its answer is sent, so it
    never waits out its shutdown timeout for gateways that still hold a channel."""

    def __init__(self) -> None:
        self.busy: dict[web.WebSocketResponse, bool] = {}
        self.stopping = False

    async def close_idle(self, app: web.Application) -> None:
        self.stopping = True
        idle = [ws for ws, busy in self.busy.items() if not busy]
        await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY) for ws in idle))


CHANNELS: web.AppKey[_Channels] = web.AppKey("channels", _Channels)


async def _channel(request: web.Request) -> web.StreamResponse:
    """Buffered invocations as WebSocket messages, one answer per request, in order, on the
    connection the gateway keeps to this pod: no HTTP request to parse and build per call.
    Streamed responses keep `/invoke`. A connection that closes mid-call leaves the call
    running, as a dropped `/invoke` does."""
    env, channels = request.app[ENVIRONMENT], request.app[CHANNELS]
    # A gateway reads its channel only during a call, so a close waits for its answer only
    # briefly: the connection is dropped after that.
    ws = web.WebSocketResponse(max_msg_size=wire.CHANNEL_MAX_MESSAGE, timeout=CLOSE_WAIT)
    await ws.prepare(request)
    channels.busy[ws] = False
    try:
        async for message in ws:
            if message.type != WSMsgType.BINARY:
                break
            channels.busy[ws] = True
            headers, payload = wire.channel_unpack(message.data)
            result = await _run(env, wire.request_from(headers, payload), None)
            if isinstance(result, tuple):
                answer = wire.channel_pack([result[0], {}], json.dumps(result[1]).encode())
            else:
                answer = wire.channel_pack([200, _answer_headers(env, result)], result.payload)
            try:
                await ws.send_bytes(answer)
            except ConnectionResetError:  # the gateway dropped the channel during the call
                break
            channels.busy[ws] = False
            if channels.stopping:
                await ws.close(code=WSCloseCode.GOING_AWAY)
                break
    finally:
        channels.busy.pop(ws, None)
    return ws


async def _stop(request: web.Request) -> web.Response:
    env = request.app[ENVIRONMENT]
    await env.stop()
    return web.json_response(state_document(env))


async def _retire(request: web.Request) -> web.Response:
    env = request.app[ENVIRONMENT]
    try:
        await env.retire()
    except EnvironmentStateError as exc:
        return _error(409, "EnvironmentStateError", str(exc))
    return web.json_response(state_document(env))


async def _state(request: web.Request) -> web.Response:
    return web.json_response(state_document(request.app[ENVIRONMENT]))


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    env = request.app[ENVIRONMENT]
    warmed = request.app.get(WARMED)
    ready = env.state in _SERVING and env.alive and (warmed is None or warmed.is_set())
    body = json.dumps({"ready": ready, "state": env.state.value})
    return web.Response(status=200 if ready else 503, text=body, content_type="application/json")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def bearer_auth(token: str) -> Middleware:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return _error(401, "Unauthorized", "the agent's control API needs its token")
        return await handler(request)

    return check


def make_app(
    env: Environment, token: str | None = None, warmed: asyncio.Event | None = None
) -> web.Application:
    """`token`: required of every control call (None: none, for tests and local use);
    `warmed`: /readyz answers 503 until it is set (the agent warms up behind an open port)."""
    middlewares: list[Any] = [bearer_auth(token)] if token else []
    app = web.Application(client_max_size=8 * 1024 * 1024, middlewares=middlewares)
    app[ENVIRONMENT] = env
    app[CHANNELS] = channels = _Channels()
    app.on_shutdown.append(channels.close_idle)
    if warmed is not None:
        app[WARMED] = warmed
    app.router.add_post("/kubelambda/v1/specialize", _specialize)
    app.router.add_post("/kubelambda/v1/invoke", _invoke)
    app.router.add_get("/kubelambda/v1/channel", _channel)
    app.router.add_post("/kubelambda/v1/stop", _stop)
    app.router.add_post("/kubelambda/v1/retire", _retire)
    app.router.add_get("/kubelambda/v1/state", _state)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app
