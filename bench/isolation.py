"""The isolation floor: the least any design can do that runs the handler in its own process.

`bench.peer` measures it beside the bare floor, the peer and kubelambda. It is a bare aiohttp
server (the bare floor's) that hands each request's body to a Python child over its pipes and
answers with what the child writes back: no routing beyond one route, no admission, no logs, no
metrics, no Runtime API, no timeouts. A child serves one call at a time, as a Lambda
environment does; a call that finds every child busy starts another. Frames are a 4-byte
big-endian length and the bytes.

What it shows: the rows of issue 14 that a gateway plus an isolated runtime can reach on this
machine at all. A goal this floor misses is out of reach of every design that keeps Lambda's
isolation, ours included.
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys

CHILD = "bench.isolation"
HEADER = struct.Struct(">I")


def handler(event: object, _context: object) -> object:
    return event  # the same no-op as bench.common.NOOP


def serve_child() -> None:
    """The child's loop: a frame in, the handler, a frame out."""
    reader, writer = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = reader.read(HEADER.size)
        if len(header) < HEADER.size:
            return
        (size,) = HEADER.unpack(header)
        answer = json.dumps(handler(json.loads(reader.read(size)), None)).encode()
        writer.write(HEADER.pack(len(answer)) + answer)
        writer.flush()


class Child:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.stdin, self.stdout = process.stdin, process.stdout

    async def call(self, body: bytes) -> bytes:
        self.stdin.write(HEADER.pack(len(body)) + body)
        (size,) = HEADER.unpack(await self.stdout.readexactly(HEADER.size))
        return await self.stdout.readexactly(size)


def serve(port: int) -> None:
    from aiohttp import web

    from bench.peer import serve_invoke_route
    from kubelambda.loop import run_loop

    idle: list[Child] = []

    async def start_child() -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            CHILD,
            "--child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return Child(process)

    async def answer(request: web.Request) -> web.Response:
        child = idle.pop() if idle else await start_child()
        try:
            body = await child.call(await request.read())
        finally:
            idle.append(child)
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        idle.append(await start_child())
        await serve_invoke_route(port, answer, "isolation floor ready")
        for child in idle:
            child.stdin.close()
            await child.process.wait()

    run_loop(main())


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        serve_child()
    else:
        serve(int(sys.argv[1]))
