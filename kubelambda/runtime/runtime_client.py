"""Our Python bootstrap's Runtime API clients (stdlib only): lean HTTP/1.1, and the pipe.

`RuntimeClient` speaks HTTP to AWS_LAMBDA_RUNTIME_API over one persistent connection, each
request written with a single send, responses parsed by hand (Content-Length, chunked, or
read-to-close). `http.client` works too, but its email-based header parsing and per-header
validation were about two thirds of the runtime's CPU per warm invoke (see bench/README.md).

`PipeClient` carries the very same requests and answers (method, path, headers, body; status,
headers, body) as frames on the socketpair the agent released the shim through, so a warm
invoke costs the agent no HTTP parsing at all (`channel.py` is the agent's end). A frame is
`FRAME` (the meta's and the body's lengths), the meta as JSON, then the body.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator

API = "/2018-06-01/runtime"
_SEPARATE_BODY = 1 << 16  # larger bodies are sent after the head instead of copied into it


FRAME = struct.Struct("!II")


class _Calls:
    """The two calls the bootstrap makes, on top of `request`."""

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def next(self) -> tuple[bytes, dict[str, str]]:
        """The next event and its headers (names lower-cased); blocks until there is one."""
        status, headers, body = self.request("GET", API + "/invocation/next")
        if status != 200:
            raise RuntimeError(f"Runtime API /next answered {status}: {body!r}")
        return body, headers

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        return self.request("POST", API + path, body, headers)[0]

    def respond_then_next(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[bytes, dict[str, str]]:
        """Post a response or error, then wait for the next event."""
        self.post(path, body, headers)
        return self.next()


class PipeClient(_Calls):
    """The Runtime API as frames on an inherited, connected Unix socket (file descriptor `fd`)."""

    def __init__(self, fd: int) -> None:
        self._sock = socket.socket(fileno=fd)
        self._sock.setblocking(True)
        self._buffer = bytearray()

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        self._send(_frame(method, path, body, headers))
        return self._answer()

    def respond_then_next(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[bytes, dict[str, str]]:
        """Both requests in one write; the agent answers both in one (with the next event)."""
        head, body = _frame("POST", API + path, body, headers)
        ask = _frame("GET", API + "/invocation/next", b"", None)
        self._send((head, body + ask[0]))
        self._answer()  # the 202 (or refusal) of the response; Lambda's runtime ignores it too
        status, answer_headers, event = self._answer()
        if status != 200:
            raise RuntimeError(f"Runtime API /next answered {status}: {event!r}")
        return event, answer_headers

    def _send(self, frame: tuple[bytes, bytes]) -> None:
        head, body = frame
        if len(body) > _SEPARATE_BODY:
            self._sock.sendall(head)
            self._sock.sendall(body)
        else:
            self._sock.sendall(head + body)

    def _answer(self) -> tuple[int, dict[str, str], bytes]:
        meta_len, body_len = FRAME.unpack(self._take(FRAME.size))
        status, answer_headers = json.loads(self._take(meta_len))
        return status, answer_headers, self._take(body_len)

    def _take(self, size: int) -> bytes:
        buffer = self._buffer
        while len(buffer) < size:
            chunk = self._sock.recv(max(1 << 16, size - len(buffer)))
            if not chunk:
                raise ConnectionError("the agent closed the Runtime API channel")
            buffer += chunk
        data = bytes(buffer[:size])
        del buffer[:size]
        return data


def _frame(
    method: str, path: str, body: bytes, headers: dict[str, str] | None
) -> tuple[bytes, bytes]:
    meta = json.dumps([method, path, headers or {}]).encode()
    return FRAME.pack(len(meta), len(body)) + meta, body


class RuntimeClient(_Calls):
    """The Runtime API at `address` ("host:port")."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._address = (host.strip("[]") or "127.0.0.1", int(port))
        self._host = address
        self._sock: socket.socket | None = None
        self._buffer = bytearray()

    def post_stream(
        self, path: str, chunks: Iterator[bytes], headers: dict[str, str]
    ) -> BaseException | None:
        """POST `chunks` with chunked transfer, each sent as soon as it is produced.

        An exception from `chunks` breaks the body off (the connection is closed before the
        last chunk), which the agent reports as the invocation's error; it is returned. (Lambda
        also defines error trailers, but the agent's HTTP parser cannot read trailers.)
        """
        sock = self._sock or self._connect()
        lines = [f"POST {API}{path} HTTP/1.1", f"Host: {self._host}", "Transfer-Encoding: chunked"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            for chunk in chunks:
                if chunk:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except Exception as exc:
            self._close()
            return exc
        sock.sendall(b"0\r\n\r\n")
        self._response()
        return None

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host}"]
        if headers:
            lines += [f"{name}: {value}" for name, value in headers.items()]
        if method != "GET":
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        for attempt in (1, 2):
            fresh = self._sock is None
            sock = self._sock or self._connect()
            try:
                if len(body) > _SEPARATE_BODY:
                    sock.sendall(head)
                    sock.sendall(body)
                else:
                    sock.sendall(head + body)
                return self._response()
            except (ConnectionError, _Closed):
                self._close()
                # Retry once on a kept-alive connection the server may have dropped meanwhile.
                if fresh or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self._address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buffer = bytearray()
        return sock

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer = bytearray()

    def _fill(self) -> None:
        assert self._sock is not None
        chunk = self._sock.recv(1 << 16)
        if not chunk:
            raise _Closed("the Runtime API closed the connection")
        self._buffer += chunk

    def _take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            self._fill()
        return self._take(end + 2)[:-2]

    def _response(self) -> tuple[int, dict[str, str], bytes]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = self._take(end + 4).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length")
        if length is not None:
            body = self._take(int(length))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._chunked()
        else:  # no length: the body runs to the end of the connection
            try:
                while True:
                    self._fill()
            except _Closed:
                pass
            body = bytes(self._buffer)
            self._close()
        if headers.get("connection", "").lower() == "close":
            self._close()
        return status, headers, body

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self._line().split(b";", 1)[0], 16)
            if size == 0:
                while self._line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._take(size))
            self._take(2)


class _Closed(ConnectionError):
    pass
