"""The agent's control HTTP API with RemoteEnvironment, in-process and as `kubelambda agent`."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import aiohttp
import psutil
import pytest
from aiohttp import web

from kubelambda.runtime.agent_app import make_app
from kubelambda.runtime.environment import Environment
from kubelambda.runtime.errors import EnvironmentBusy, EnvironmentStateError
from kubelambda.runtime.protocol import ExecutionEnvironment
from kubelambda.runtime.remote import RemoteEnvironment
from kubelambda.runtime.spec import EnvState

from .helpers import gone, make_request, make_spec, serve_agent, wait_until

CODE = {
    "app.py": (
        "import time\n"
        "def handler(event, context):\n"
        "    print('remote says hi')\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    return {'got': event, 'rid': context.aws_request_id}\n"
    )
}


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[tuple[Environment, str]]:
    async with serve_agent(tmp_path / "env") as served:
        yield served


async def test_remote_round_trip(agent: tuple[Environment, str]) -> None:
    env, url = agent
    remote = RemoteEnvironment(url)
    assert isinstance(remote, ExecutionEnvironment) and isinstance(env, ExecutionEnvironment)
    try:
        document = await remote.refresh()
        assert document["state"] == "warm" and document["spec"] is None
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/healthz") as health:
                assert health.status == 200
            async with session.get(f"{url}/readyz") as ready:
                assert ready.status == 200
        with pytest.raises(EnvironmentStateError):
            await remote.invoke(make_request())
        spec = make_spec(CODE)
        await remote.specialize(spec)
        assert remote.spec == spec and env.spec == spec
        request = make_request(b'{"a": 1}', log_tail=True)
        result = await remote.invoke(request)
        assert json.loads(result.payload) == {"got": {"a": 1}, "rid": request.request_id}
        assert result.request_id == request.request_id and result.executed_version == "$LATEST"
        assert result.init_duration_ms is not None and result.billed_duration_ms >= 1
        assert result.log_tail is not None and "remote says hi" in result.log_tail
        assert "REPORT RequestId" in result.log_tail
        assert remote.state == EnvState.READY and remote.invocations == 1

        slow = asyncio.create_task(remote.invoke(make_request(b'{"sleep": 0.5}')))
        await wait_until(lambda: env.state == EnvState.BUSY)
        with pytest.raises(EnvironmentBusy):
            await remote.invoke(make_request())
        assert (await slow).function_error is None

        with pytest.raises(ValueError, match="Base64"):
            await remote.invoke(make_request(client_context="not base64!"))
        document = await remote.refresh()
        assert document["spec"]["functionName"] == "hello" and document["invocations"] == 2
        await remote.stop()
        assert env.state == EnvState.STOPPED
        assert remote.state.value == "stopped"
    finally:
        await remote.close()


async def test_retire_and_specialize_take_the_agent_once(tmp_path: Path) -> None:
    """The lock between the operator and the gateways: whichever of retire and specialize
    comes first wins, the other is refused with EnvironmentStateError; a retired agent retires
    again (a deletion retried)."""
    outcomes: dict[str, list[str]] = {}
    for first in ("specialize", "retire"):
        async with serve_agent(tmp_path / first) as (env, url):
            gateway, operator = RemoteEnvironment(url), RemoteEnvironment(url)
            spec = make_spec(CODE)
            calls = {"specialize": partial(gateway.specialize, spec), "retire": operator.retire}
            second = "retire" if first == "specialize" else "specialize"
            try:
                await calls[first]()
                with pytest.raises(EnvironmentStateError):
                    await calls[second]()
                outcomes[first] = [env.state.value, (await gateway.refresh())["state"]]
                if first == "retire":
                    await operator.retire()  # again: no error
            finally:
                await gateway.close()
                await operator.close()
    assert outcomes["specialize"][0] in ("initializing", "ready")
    assert outcomes["retire"] == ["stopped", "stopped"]


async def test_invalid_spec_is_a_400(agent: tuple[Environment, str]) -> None:
    _, url = agent
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/kubelambda/v1/specialize", json={"functionName": "x"}) as response,
    ):
        assert response.status == 400
        assert (await response.json())["errorType"] == "InvalidSpec"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_kubelambda_agent_command(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(make_spec(CODE).model_dump_json(by_alias=True))
    port = _free_port()
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kubelambda.cli",
        "agent",
        "--runtime",
        "python3.12",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--runtime-api-port",
        "0",
        "--work-dir",
        str(tmp_path / "work"),
        "--spec",
        str(spec_file),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    remote = RemoteEnvironment(f"http://127.0.0.1:{port}")
    try:
        assert agent.stderr is not None
        banner = await asyncio.wait_for(agent.stderr.readline(), 30)
        assert b"control API on 127.0.0.1" in banner
        warm = await asyncio.wait_for(agent.stderr.readline(), 30)  # warm-up behind the port
        assert b"warm, Runtime API on 127.0.0.1" in warm, warm
        document = await remote.refresh()
        assert document["spec"]["functionName"] == "hello"  # specialized at start (--spec)
        result = await remote.invoke(make_request(b'{"x": 2}'))
        assert json.loads(result.payload)["got"] == {"x": 2}
        runtime_pid = document["pid"]
        assert psutil.Process(runtime_pid).ppid() == agent.pid
    finally:
        await remote.close()
        agent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(agent.wait(), 10) == 0
    await wait_until(lambda: gone(runtime_pid))


async def test_the_control_api_needs_the_agents_token(tmp_path: Path) -> None:
    """Issue 12, defect 3: specialize with inline code, then invoke, from anyone who can reach
    the agent, ran arbitrary code; with a token, only its holder can."""
    env = Environment("python3.12", work_dir=tmp_path / "env", log_sink=lambda line: None)
    runner = web.AppRunner(make_app(env, token="s3cret-token"), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}"
    await env.start()
    body = make_spec(CODE).model_dump_json(by_alias=True)
    try:
        async with aiohttp.ClientSession() as session:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                for path in ("specialize", "invoke", "stop", "state"):
                    async with session.post(
                        f"{url}/kubelambda/v1/{path}", data=body, headers=headers
                    ) as answer:
                        assert answer.status == 401, (path, headers)
                        assert (await answer.json())["errorType"] == "Unauthorized"
            async with session.get(f"{url}/readyz") as ready:  # the kubelet's probes stay open
                assert ready.status == 200
        assert env.spec is None and env.state == EnvState.WARM  # nothing was specialized
        remote = RemoteEnvironment(url, token="s3cret-token")
        try:
            await remote.specialize(make_spec(CODE))
            result = await remote.invoke(make_request(b'{"x": 1}'))
            assert json.loads(result.payload)["got"] == {"x": 1}
        finally:
            await remote.close()
    finally:
        await runner.cleanup()
        await env.stop()
