"""The agent's memory while it fetches code (issue 16, point 2): a 20 MB zip from a URL is
streamed to disk and extracted from the file, so the agent's peak RSS grows by far less than
the zip. Measured on the real `kubelambda agent` process: its peak (VmHWM) is reset just before
the download (/proc/PID/clear_refs), so only the specialization's own growth counts."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

from aiohttp import web

from kubelambda.runtime.remote import RemoteEnvironment
from kubelambda.runtime.spec import CodeRef

from .helpers import BIG_ZIP_MB, big_zip, make_request, make_spec, reset_peak, status_kb


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_20_mb_zip_from_a_url_does_not_grow_the_agent_by_its_size(tmp_path: Path) -> None:
    archive = tmp_path / "code.zip"
    digest = big_zip(archive)
    size_kb = archive.stat().st_size // 1024
    app = web.Application()

    async def serve(request: web.Request) -> web.FileResponse:
        return web.FileResponse(archive)

    app.router.add_get("/code.zip", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    code_url = f"http://127.0.0.1:{runner.addresses[0][1]}/code.zip"
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
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    remote = RemoteEnvironment(f"http://127.0.0.1:{port}")
    try:
        assert agent.stderr is not None
        banner = await asyncio.wait_for(agent.stderr.readline(), 30)
        assert b"control API on 127.0.0.1" in banner, banner
        assert b"warm" in await asyncio.wait_for(agent.stderr.readline(), 30)
        assert (await remote.refresh())["state"] == "warm"
        before = status_kb(agent.pid, "VmRSS")
        reset_peak(agent.pid)
        assert status_kb(agent.pid, "VmHWM") <= before + 1024
        await remote.specialize(make_spec(CodeRef(url=code_url, sha256=digest)))
        result = await remote.invoke(make_request())
        assert json.loads(result.payload) == BIG_ZIP_MB * 1024 * 1024  # the code was served
        growth = status_kb(agent.pid, "VmHWM") - before
        print(f"agent RSS {before} KiB, peak growth {growth} KiB for a {size_kb} KiB zip")
        # Held whole (and joined) the zip cost twice its size; streamed, a few buffers.
        assert growth < size_kb * 0.3, f"peak RSS grew by {growth} KiB for a {size_kb} KiB zip"
    finally:
        await remote.close()
        agent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(agent.wait(), 30) == 0
        await runner.cleanup()
