"""The agent's end of the pipe channel: the Runtime API as frames on the shim's socketpair.

Our own Python bootstrap (`runtime_client.PipeClient`) sends each Runtime API request (method,
path, headers, body) as one frame on the socketpair the agent released it through, and reads
the answer as one frame. The calls go to the same `server.RuntimeApi` core as HTTP, so states,
status codes and bodies are the same; only the carrier is cheaper: no HTTP parsing, no TCP, one
`send` and one `recv` per message. awslambdaric, custom `bootstrap` runtimes and images keep
the HTTP Runtime API. A body over Lambda's 6 MiB is read to its end and dropped, never kept.
A streamed response goes over HTTP (frames are whole messages); the /next that follows it on
the pipe waits until the HTTP side has settled that invocation.
"""

from __future__ import annotations

import asyncio
import socket
from typing import cast

import orjson

from kubelambda.runtime.limits import MAX_RESPONSE_BYTES
from kubelambda.runtime.runtime_client import FRAME
from kubelambda.runtime.server import NEXT, PendingInvocation, Reply, RuntimeApi, not_found, route

_JSON_HEADERS = {"content-type": "application/json"}


def encode_reply(reply: Reply) -> bytes:
    """One answer frame: [status, headers] then the body (header names lower-cased)."""
    headers = reply.headers
    named = {k.lower(): v for k, v in headers.items()} if headers is not None else _JSON_HEADERS
    meta = orjson.dumps([reply.status, named])
    return FRAME.pack(len(meta), len(reply.body)) + meta + reply.body


class PipeChannel(asyncio.Protocol):
    """Frames in, `RuntimeApi` calls, frames out; one runtime process generation."""

    def __init__(self, api: RuntimeApi) -> None:
        self._api = api
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        # A frame whose head is read: its meta and body lengths, and how much body to drop.
        self._head: tuple[int, int] | None = None
        self._dropping = 0
        self._dropped: tuple[int, PendingInvocation | Reply] | None = None
        # Answers not written yet, and whether a /next of the runtime waits for an event: the
        # answers before it then go out with the event, in one write (see `data_received`).
        self._out: list[bytes] = []
        self._polling = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        """Answer every whole frame in order. Our bootstrap sends its response and its next
        /next together (`PipeClient.respond_then_next`); the 202 for the response then waits
        for the event that answers that /next, so a warm invoke is one write each way."""
        self._parse(data)
        if not self._polling:
            self._flush()

    def _parse(self, data: bytes) -> None:
        if self._dropping:
            data = self._drop(data)
        buffer = self._buffer
        buffer += data
        while True:
            if self._head is None:
                if len(buffer) < FRAME.size:
                    return
                self._head = FRAME.unpack_from(buffer)
                del buffer[: FRAME.size]
            meta_len, body_len = self._head
            if body_len > MAX_RESPONSE_BYTES and len(buffer) >= meta_len:
                self._head = None
                meta = orjson.loads(bytes(buffer[:meta_len]))
                rest = bytes(buffer[meta_len:])
                buffer.clear()
                self._begin_drop(meta, body_len)
                rest = self._drop(rest)
                buffer += rest
                continue
            if len(buffer) < meta_len + body_len:
                return
            self._head = None
            meta = orjson.loads(buffer[:meta_len])
            body = bytes(buffer[meta_len : meta_len + body_len])
            del buffer[: meta_len + body_len]
            self._request(meta, body)

    def _request(self, meta: list[object], body: bytes) -> None:
        method, path, headers = cast(tuple[str, str, dict[str, str]], meta)
        kind, request_id = route(method, path)
        api = self._api
        if kind == "next":
            running = api.running()
            if running is not None:
                # Our bootstrap streams over HTTP: a /next here while its invocation is still
                # running means that stream ended (or broke off) and the HTTP side has not
                # read all of it yet. The event comes once it has settled.
                self._polling = True
                running.outcome.add_done_callback(lambda _: self._next_after_stream())
                return
            taken = api.take_next()
            if isinstance(taken, asyncio.Future):
                self._polling = True
                taken.add_done_callback(self._answer_next)
                return
            self._send(taken)
        elif kind == "response" or kind == "error":
            current = api.answering(request_id, kind)
            if isinstance(current, Reply):
                self._send(current)
                return
            error_type = _header(headers, "Lambda-Runtime-Function-Error-Type")
            self._send(api.answer(current, kind, body, error_type))
        elif kind == "init_error":
            error_type = _header(headers, "Lambda-Runtime-Function-Error-Type")
            self._send(api.init_error(body, error_type))
        else:
            self._send(not_found(method, path))

    def _next_after_stream(self) -> None:
        self._polling = False
        self._request(["GET", NEXT, {}], b"")
        if not self._polling:
            self._flush()

    def _answer_next(self, waiter: asyncio.Future[PendingInvocation | None]) -> None:
        self._polling = False
        if not waiter.cancelled():
            self._send(self._api.next_reply(waiter.result()))
        self._flush()

    def _send(self, reply: Reply) -> None:
        self._out.append(encode_reply(reply))

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(out) if len(out) > 1 else out[0])

    # An oversized answer: its meta is known, its body is counted off and dropped.
    def _begin_drop(self, meta: list[object], body_len: int) -> None:
        method, path, _headers = cast(tuple[str, str, dict[str, str]], meta)
        kind, request_id = route(method, path)
        answering: PendingInvocation | Reply
        if kind == "response" or kind == "error":
            answering = self._api.answering(request_id, kind)
        else:
            answering = not_found(method, path)
        self._dropping = body_len
        self._dropped = (body_len, answering)

    def _drop(self, data: bytes) -> bytes:
        taken = min(self._dropping, len(data))
        total_left = self._dropping - taken
        self._dropping = total_left
        if total_left == 0 and self._dropped is not None:
            size, answering = self._dropped
            self._dropped = None
            if isinstance(answering, Reply):
                self._send(answering)
            else:
                self._send(self._api.too_large(answering, size))
        return data[taken:]


def _header(headers: dict[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


async def attach(api: RuntimeApi, sock: socket.socket) -> PipeChannel:
    """Serve the Runtime API on `sock` (the released shim's end of the socketpair)."""
    loop = asyncio.get_running_loop()
    _transport, channel = await loop.create_unix_connection(lambda: PipeChannel(api), sock=sock)
    return channel
