"""`kubelambda agent` warms up behind an open port (issue 16, point 3): with its runtime in
another container that has not started yet (its image still pulling), /healthz answers at once
and /readyz says 503 until the runtime's shim is up; then 200 and the pod serves. The runtime
container is the real `sh` shim started late by the test; the agent is the real process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp

from kubelambda.runtime.handshake import SHIM
from kubelambda.runtime.remote import RemoteEnvironment

from .helpers import make_request, make_spec

ENTRYPOINT = '#!/bin/sh\nexec "$PYTHON" -m awslambdaric "$1"\n'
CODE = {"app.py": "def handler(event, context):\n    return {'warm': True}\n"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _status(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as response:
        return response.status


async def test_healthz_at_once_readyz_503_until_a_late_runtime_container_is_up(
    tmp_path: Path,
) -> None:
    handshake, task, layers = tmp_path / "handshake", tmp_path / "task", tmp_path / "layers"
    for folder in (handshake, task, layers):
        folder.mkdir()
    entry = tmp_path / "lambda-entrypoint.sh"
    entry.write_text(ENTRYPOINT)
    entry.chmod(0o755)
    port = _free_port()
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kubelambda.cli",
        "agent",
        "--runtime=python3.12",
        "--host=127.0.0.1",
        f"--port={port}",
        "--runtime-api-port=0",
        f"--work-dir={tmp_path / 'work'}",
        f"--runtime-container={handshake}",
        f"--task-root={task}",
        f"--layers-dir={layers}",
        "--runtime-start-timeout=120",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    shim: asyncio.subprocess.Process | None = None
    remote = RemoteEnvironment(base)
    try:
        assert agent.stderr is not None
        banner = await asyncio.wait_for(agent.stderr.readline(), 30)
        assert b"control API on 127.0.0.1" in banner, banner
        async with aiohttp.ClientSession() as session:
            # No runtime container yet: alive, not ready, and it stays so while it waits.
            for _ in range(5):
                assert await _status(session, f"{base}/healthz") == 200
                assert await _status(session, f"{base}/readyz") == 503
            assert (await remote.refresh())["state"] == "starting"
            shim = await asyncio.create_subprocess_exec(
                *("sh", "-c", SHIM, "shim", str(handshake), str(task), "handler", str(entry)),
                env={"PATH": os.environ["PATH"], "PYTHON": sys.executable},
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 30
            while await _status(session, f"{base}/readyz") != 200:
                assert time.monotonic() < deadline, "/readyz never said 200 once the shim ran"
                await asyncio.sleep(0.05)  # between polls of the condition
        await remote.specialize(make_spec(CODE))
        result = await remote.invoke(make_request())
        assert json.loads(result.payload) == {"warm": True}
    finally:
        await remote.close()
        agent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(agent.wait(), 30) == 0
        if shim is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shim.pid, signal.SIGKILL)
            await asyncio.wait_for(shim.wait(), 5)
