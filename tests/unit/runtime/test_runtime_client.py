"""The bootstrap's HTTP/1.1 client against scripted sockets: framing, keep-alive, reconnects."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from kubelambda.runtime.runtime_client import RuntimeClient

Script = Callable[[socket.socket], None]


@pytest.fixture
def server() -> Iterator[Callable[[list[Script]], str]]:
    """A one-thread TCP server that runs one script per accepted connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    threads: list[threading.Thread] = []

    def start(scripts: list[Script]) -> str:
        def serve() -> None:
            for script in scripts:
                conn, _ = listener.accept()
                with conn:
                    script(conn)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        host, port = listener.getsockname()
        return f"{host}:{port}"

    yield start
    listener.close()
    for thread in threads:
        thread.join(5)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            size = int(line.split(b":")[1])
            while len(body) < size:
                body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def test_keep_alive_content_length_and_chunked(server: Callable[[list[Script]], str]) -> None:
    seen: list[bytes] = []

    def script(conn: socket.socket) -> None:
        seen.append(_read_request(conn))
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n"
            b'Lambda-Runtime-Aws-Request-Id: abc\r\n\r\n{"a":1}'
        )
        seen.append(_read_request(conn))
        conn.sendall(
            b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'4\r\n{"st\r\n6\r\natus"}\r\n0\r\n\r\n'
        )

    client = RuntimeClient(server([script]))
    body, headers = client.next()
    assert body == b'{"a":1}' and headers["lambda-runtime-aws-request-id"] == "abc"
    assert client.post("/invocation/abc/response", b'"ok"', {"Content-Type": "text/plain"}) == 202
    assert seen[0].startswith(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n")
    assert seen[1].startswith(b"POST /2018-06-01/runtime/invocation/abc/response HTTP/1.1\r\n")
    assert b"Content-Length: 4\r\n" in seen[1] and seen[1].endswith(b'\r\n\r\n"ok"')


def test_reconnects_once_when_a_kept_alive_connection_was_dropped(
    server: Callable[[list[Script]], str],
) -> None:
    def first(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        # then the server drops the idle connection

    def second(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    client = RuntimeClient(server([first, second]))
    client.next()
    assert client.post("/invocation/x/response", b"{}", {}) == 202


def test_non_200_next_is_an_error(server: Callable[[list[Script]], str]) -> None:
    def script(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 1\r\n\r\nx")

    client = RuntimeClient(server([script]))
    with pytest.raises(RuntimeError, match="500"):
        client.next()
