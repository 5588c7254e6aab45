"""A streamed response across the agent's control API (cluster mode's path): chunks reach the
gateway's side while the function still runs, in order, then the result; a buffered function
behind a stream arrives as an ordinary payload."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from kubelambda.runtime.remote import RemoteEnvironment
from kubelambda.runtime.spec import EnvState

from .helpers import make_request, make_spec
from .test_agent_control import agent  # noqa: F401  (the fixture)

STREAMING = {
    "app.py": (
        "import os, time\n"
        "def handler(event, context):\n"
        "    if event.get('buffered'):\n"
        "        return {'whole': True}\n"
        "    def chunks():\n"
        "        yield 'one;'\n"
        "        deadline = time.monotonic() + 20\n"
        "        while not os.path.exists(event['gate']) and time.monotonic() < deadline:\n"
        "            time.sleep(0.01)\n"
        "        yield b'two;'\n"
        "        yield {'three': 3}\n"
        "    return chunks()\n"
    )
}


class Collector:
    def __init__(self) -> None:
        self.content_type: str | None = None
        self.chunks: list[bytes] = []
        self.first = asyncio.Event()

    async def begin(self, content_type: str) -> None:
        self.content_type = content_type

    async def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.first.set()


async def test_chunks_cross_the_agent_while_the_function_runs(
    agent: tuple[object, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    _, url = agent
    remote = RemoteEnvironment(url)
    try:
        await remote.specialize(make_spec(STREAMING))
        gate = tmp_path / "gate"
        sink = Collector()
        call = asyncio.create_task(
            remote.invoke(make_request(json.dumps({"gate": str(gate)}).encode()), sink)
        )
        await asyncio.wait_for(sink.first.wait(), 30)
        assert not call.done() and not gate.exists()  # the function is still waiting
        assert b"".join(sink.chunks) == b"one;"
        gate.touch()
        result = await asyncio.wait_for(call, 30)
        assert result.streamed and result.payload == b"" and result.function_error is None
        assert b"".join(sink.chunks) == b'one;two;{"three": 3}'
        assert sink.content_type == "application/octet-stream"
        assert remote.state == EnvState.READY

        buffered = Collector()
        whole = await remote.invoke(make_request(b'{"buffered": true}'), buffered)
        assert not whole.streamed and json.loads(whole.payload) == {"whole": True}
        assert buffered.chunks == []
    finally:
        await remote.close()
