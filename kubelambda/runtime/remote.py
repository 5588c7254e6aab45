"""RemoteEnvironment: an agent's environment driven over its control HTTP API (cluster mode).

Same surface as the in-process `Environment` (see `protocol.ExecutionEnvironment`); its state is
the agent's as last seen in a reply, and `refresh()` asks for it. Buffered invokes go over the
agent's channel, a WebSocket this client keeps open (`agent_app._channel`), since an HTTP request
per call was most of the gateway's CPU on the warm path; streamed ones, and any call while the
channel is busy or refused (an older agent), use `POST /invoke`. A call that fails or is
cancelled on the channel closes it, so a late answer can never be read as the next call's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from kubelambda.runtime import wire
from kubelambda.runtime.archive import CodeError
from kubelambda.runtime.errors import EnvironmentBusy, EnvironmentStateError
from kubelambda.runtime.invocation import InvalidClientContext
from kubelambda.runtime.spec import EnvironmentSpec, EnvState, InvokeRequest, InvokeResult
from kubelambda.runtime.stream import ResponseStream

# No bound on a call's answer (the invoker bounds the call); a close handshake waits briefly.
_CHANNEL_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)


class AgentError(RuntimeError):
    """The agent answered with an error this client has no better exception for."""


class RemoteEnvironment:
    """A client for one agent at `base_url` (e.g. http://10.1.2.3:8080)."""

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._session = session
        self._owns_session = session is None
        self._state = EnvState.STARTING
        self._spec: EnvironmentSpec | None = None
        self._alive = True
        self.invocations = 0
        self.last_used_at = time.monotonic()
        self.specialize_timing: dict[str, float] = {}  # the agent's own ms, per phase
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._channel_usable = True
        self._channel_busy = False
        self._connecting: asyncio.Task[aiohttp.ClientWebSocketResponse | None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def state(self) -> EnvState:
        return self._state

    @property
    def spec(self) -> EnvironmentSpec | None:
        return self._spec

    @property
    def alive(self) -> bool:
        return self._alive

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def refresh(self) -> dict[str, Any]:
        """The agent's state document; also updates `state` and `alive`."""
        async with self._client().get(
            f"{self.base_url}/kubelambda/v1/state", headers=self._auth
        ) as response:
            document: dict[str, Any] = await response.json()
        self._seen(document)
        return document

    async def specialize(self, spec: EnvironmentSpec) -> None:
        body = spec.wire_json()  # the only place secret values leave the gateway
        async with self._client().post(
            f"{self.base_url}/kubelambda/v1/specialize",
            data=body,
            headers={"Content-Type": "application/json", **self._auth},
        ) as response:
            document = await response.json()
            if response.status != 200:
                raise _error(response.status, document)
            self.specialize_timing = wire.server_timing_ms(
                response.headers.get(wire.SERVER_TIMING, "")
            )
        self._spec = spec
        self._seen(document)

    async def invoke(
        self, request: InvokeRequest, stream: ResponseStream | None = None
    ) -> InvokeResult:
        if stream is None and not self._channel_busy and self._channel_usable:
            self._channel_busy = True  # from the connect on: a second call takes HTTP
            try:
                await self._connected_ahead()
                ws = await self._channel()
                if ws is not None:
                    return await self._invoke_on(ws, request)
            finally:
                self._channel_busy = False
        headers = {**wire.request_headers(request), **self._auth}
        if stream is not None:
            headers[wire.STREAM] = "1"
        async with self._client().post(
            f"{self.base_url}/kubelambda/v1/invoke", data=request.payload, headers=headers
        ) as response:
            if response.status != 200:
                raise _error(response.status, await response.json(content_type=None))
            if stream is not None:
                return await self._frames(response, stream)
            payload = await response.read()
            return self._result(response.headers, payload)

    def connect_ahead(self) -> None:
        """Open the channel now, in the background (once a specialization is answered, while
        the runtime initializes), so the first call finds it open: on the cold start's path
        that is a round trip less."""
        if self._connecting is None and self._ws is None and self._channel_usable:
            self._connecting = asyncio.get_running_loop().create_task(self._channel())

    async def _connected_ahead(self) -> None:
        """Wait for a connect begun ahead; its failure is the channel's next connect's."""
        task, self._connecting = self._connecting, None
        if task is not None:
            await asyncio.wait([task])  # its own outcome stays in it (and is not raised here)
            if not task.cancelled():
                task.exception()  # retrieved, so an error is not reported as never awaited

    async def _channel(self) -> aiohttp.ClientWebSocketResponse | None:
        """The open channel to the agent, connected on first use (None: the agent has none,
        as a connect begun ahead may have found)."""
        if self._ws is not None and not self._ws.closed:
            return self._ws
        if not self._channel_usable:
            return None
        try:
            self._ws = await self._client().ws_connect(
                f"{self.base_url}/kubelambda/v1/channel",
                headers=self._auth,
                max_msg_size=wire.CHANNEL_MAX_MESSAGE,
                timeout=_CHANNEL_TIMEOUT,
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                raise AgentError(f"{exc.status}: the agent refused this gateway's token") from None
            self._channel_usable = False  # an agent from before the channel: HTTP from now on
            return None
        return self._ws

    async def _invoke_on(
        self, ws: aiohttp.ClientWebSocketResponse, request: InvokeRequest
    ) -> InvokeResult:
        try:
            await ws.send_bytes(wire.channel_pack(wire.request_headers(request), request.payload))
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.BINARY:
                raise AgentError(f"the agent's channel closed during the call ({message.type!r})")
            (status, answer), payload = wire.channel_unpack(message.data)
            if status == 200 and answer.get(wire.REQUEST_ID) != request.request_id:
                raise AgentError("the agent's channel answered another call")
        except BaseException:
            self._drop_channel()  # whatever it still sends belongs to no call
            raise
        if status != 200:
            raise _error(status, json.loads(payload))
        return self._result(answer, payload)

    def _result(self, answer: Mapping[str, str], payload: bytes) -> InvokeResult:
        """A buffered call's answer (from either carrier), counted, with the state it left."""
        self.invocations += 1
        self.last_used_at = time.monotonic()
        state = answer.get(wire.STATE)
        if state:
            self._state = EnvState(state)
        return wire.result_from(answer, payload)

    def _drop_channel(self) -> None:
        """Forget the channel and close it in the background: its close handshake may wait
        for an agent still running the call."""
        ws, self._ws = self._ws, None
        if ws is not None and not ws.closed:
            task = asyncio.create_task(_close_quietly(ws))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _frames(
        self, response: aiohttp.ClientResponse, stream: ResponseStream
    ) -> InvokeResult:
        """Read a streamed answer's frames, passing the body on as it comes."""
        result: InvokeResult | None = None
        while True:
            try:
                head = await response.content.readexactly(5)
            except asyncio.IncompleteReadError as exc:
                if exc.partial or result is None:
                    raise AgentError("the agent's stream ended before its result") from None
                break
            data = await response.content.readexactly(int.from_bytes(head[1:], "big"))
            kind = head[:1]
            if kind == wire.FRAME_BEGIN:
                await stream.begin(data.decode())
            elif kind == wire.FRAME_CHUNK:
                await stream.write(data)
            elif kind == wire.FRAME_RESULT:
                result = wire.result_from_frame(data)
            elif kind == wire.FRAME_STATE:
                self._state = EnvState(data.decode())
        self.invocations += 1
        self.last_used_at = time.monotonic()
        return result

    async def stop(self) -> None:
        """Stop the agent's runtime gracefully, then close this client."""
        try:
            async with self._client().post(
                f"{self.base_url}/kubelambda/v1/stop", headers=self._auth
            ) as response:
                self._seen(await response.json())
        except aiohttp.ClientError:
            self._state = EnvState.STOPPED
            self._alive = False
        await self.close()

    async def retire(self) -> None:
        """Stop the agent's environment only if it is still warm; EnvironmentStateError if a
        specialization took it first."""
        async with self._client().post(
            f"{self.base_url}/kubelambda/v1/retire", headers=self._auth
        ) as response:
            document = await response.json()
            if response.status != 200:
                raise _error(response.status, document)
        self._seen(document)
        await self.close()

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            await self._connected_ahead()
        self._drop_channel()
        for task in list(self._closing):
            with contextlib.suppress(Exception):
                await task
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _seen(self, document: dict[str, Any]) -> None:
        self._state = EnvState(document["state"])
        self._alive = bool(document.get("alive", True))


def _error(status: int, document: dict[str, Any]) -> Exception:
    error_type = document.get("errorType", "")
    message = document.get("errorMessage", f"agent answered {status}")
    if error_type == "EnvironmentBusy":
        return EnvironmentBusy(message)
    if error_type == "EnvironmentStateError":
        return EnvironmentStateError(message)
    if error_type == "CodeError":
        return CodeError(message)
    if error_type == "InvalidRequestContentException":
        return InvalidClientContext(message)
    return AgentError(f"{error_type or status}: {message}")


async def _close_quietly(ws: aiohttp.ClientWebSocketResponse) -> None:
    with contextlib.suppress(Exception):
        await ws.close()
