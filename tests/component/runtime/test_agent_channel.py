"""The agent's channel: buffered invokes as WebSocket messages on one kept connection.

The gateway's RemoteEnvironment keeps one channel per agent; these tests hold it to what the
HTTP `/invoke` gives (results, errors, busy), and to the two ways it could go wrong: a call
cancelled mid-way must never hand its late answer to the next call, and an agent without the
channel (an older one) must still be served, over HTTP.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from kubelambda.runtime.agent_app import CHANNELS, make_app
from kubelambda.runtime.environment import Environment
from kubelambda.runtime.errors import EnvironmentBusy
from kubelambda.runtime.remote import AgentError, RemoteEnvironment
from kubelambda.runtime.spec import EnvState

from .helpers import make_request, make_spec, serve_agent, wait_until

CODE = {
    "app.py": (
        "import time\n"
        "def handler(event, context):\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    return {'got': event, 'rid': context.aws_request_id}\n"
    )
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Agent:
    def __init__(
        self, env: Environment, url: str, paths: Counter[str], *, channel: bool = True
    ) -> None:
        self.env, self.url, self.paths, self.channel = env, url, paths, channel


async def _serve(tmp_path: Path, *, channel: bool, token: str | None) -> AsyncIterator[Agent]:
    paths: Counter[str] = Counter()

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        paths[request.path] += 1
        if not channel and request.path == "/kubelambda/v1/channel":
            raise web.HTTPNotFound()  # as an agent from before the channel answers
        return await handler(request)

    async with serve_agent(tmp_path / "env", token=token, first=count) as (env, url):
        yield Agent(env, url, paths, channel=channel)


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    async for served in _serve(tmp_path, channel=True, token="s3cret"):
        yield served


@pytest.fixture
async def old_agent(tmp_path: Path) -> AsyncIterator[Agent]:
    async for served in _serve(tmp_path, channel=False, token=None):
        yield served


async def test_buffered_invokes_share_one_channel(agent: Agent) -> None:
    remote = RemoteEnvironment(agent.url, token="s3cret")
    try:
        await remote.specialize(make_spec(CODE))
        for n in range(3):
            request = make_request(json.dumps({"n": n}).encode())
            result = await remote.invoke(request)
            assert json.loads(result.payload) == {"got": {"n": n}, "rid": request.request_id}
            assert result.request_id == request.request_id and result.billed_duration_ms >= 1
        assert remote.state == EnvState.READY and remote.invocations == 3
        # The specialization's answer said where the agent's own time went.
        assert set(remote.specialize_timing) == {"read", "parse", "specialize"}
        assert agent.paths["/kubelambda/v1/channel"] == 1  # one connection for all three
        assert agent.paths["/kubelambda/v1/invoke"] == 0
        # An error answer is an answer: the channel stays, and says what HTTP says.
        with pytest.raises(ValueError, match="Base64"):
            await remote.invoke(make_request(client_context="not base64!"))
        slow = asyncio.create_task(remote.invoke(make_request(b'{"sleep": 0.5}')))
        await wait_until(lambda: agent.env.state == EnvState.BUSY)
        with pytest.raises(EnvironmentBusy):  # the channel is taken: this one went over HTTP
            await remote.invoke(make_request())
        assert (await slow).function_error is None
        assert agent.paths["/kubelambda/v1/channel"] == 1
        assert agent.paths["/kubelambda/v1/invoke"] == 1
    finally:
        await remote.close()


async def test_a_cancelled_call_never_answers_the_next(agent: Agent) -> None:
    remote = RemoteEnvironment(agent.url, token="s3cret")
    try:
        await remote.specialize(make_spec(CODE))
        first = make_request(b'{"sleep": 0.5}')
        slow = asyncio.create_task(remote.invoke(first))
        await wait_until(lambda: agent.env.state == EnvState.BUSY)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        await wait_until(lambda: agent.env.state == EnvState.READY, within=10)
        nxt = make_request(b'{"after": true}')
        result = await remote.invoke(nxt)
        assert result.request_id == nxt.request_id
        assert json.loads(result.payload) == {"got": {"after": True}, "rid": nxt.request_id}
        assert agent.paths["/kubelambda/v1/channel"] == 2  # the first channel was dropped
    finally:
        await remote.close()


async def test_an_agent_without_the_channel_is_served_over_http(old_agent: Agent) -> None:
    remote = RemoteEnvironment(old_agent.url)
    try:
        await remote.specialize(make_spec(CODE))
        for _ in range(2):
            request = make_request(b"{}")
            assert (await remote.invoke(request)).request_id == request.request_id
        assert old_agent.paths["/kubelambda/v1/channel"] == 1  # asked once, then never again
        assert old_agent.paths["/kubelambda/v1/invoke"] == 2
    finally:
        await remote.close()


async def test_a_wrong_token_is_refused_on_the_channel_too(agent: Agent) -> None:
    remote = RemoteEnvironment(agent.url, token="not-it")
    try:
        with pytest.raises(AgentError, match="401"):
            await remote.invoke(make_request())
        assert agent.paths["/kubelambda/v1/invoke"] == 0
    finally:
        await remote.close()


async def test_two_calls_at_once_open_one_channel(agent: Agent) -> None:
    remote = RemoteEnvironment(agent.url, token="s3cret")
    try:
        await remote.specialize(make_spec(CODE))
        both = await asyncio.gather(
            remote.invoke(make_request(b'{"sleep": 0.3}')),
            remote.invoke(make_request(b'{"sleep": 0.3}')),
            return_exceptions=True,
        )
        # One ran, the other found the environment busy (as over HTTP), and only one of the
        # two opened a channel: the other went over HTTP from the connect on.
        assert sorted(type(x).__name__ for x in both) == ["EnvironmentBusy", "InvokeResult"]
        assert agent.paths["/kubelambda/v1/channel"] == 1
        assert agent.paths["/kubelambda/v1/invoke"] == 1
    finally:
        await remote.close()


@pytest.fixture(params=["current", "older"])
async def either_agent(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Agent]:
    """An agent with the channel (and a token), or one from before it (without)."""
    current = request.param == "current"
    async for served in _serve(tmp_path, channel=current, token="s3cret" if current else None):
        yield served


async def test_a_channel_opened_ahead_serves_the_first_call(either_agent: Agent) -> None:
    """The cluster provider opens the channel once the specialization is answered: the first
    call then uses it (no second connect); an older agent refuses it, and the call goes over
    HTTP, as it would after a refused connect on the call."""
    agent = either_agent
    remote = RemoteEnvironment(agent.url, token="s3cret")
    try:
        await remote.specialize(make_spec(CODE))
        remote.connect_ahead()
        call = make_request(b"{}")
        assert (await remote.invoke(call)).request_id == call.request_id
        assert agent.paths["/kubelambda/v1/channel"] == 1
        assert agent.paths["/kubelambda/v1/invoke"] == (0 if agent.channel else 1)
    finally:
        await remote.close()


async def test_closing_during_an_ahead_connect_leaves_nothing_open(agent: Agent) -> None:
    remote = RemoteEnvironment(agent.url, token="s3cret")
    remote.connect_ahead()
    await remote.close()  # at once: the connect is cancelled or closed, never leaked
    assert remote._ws is None and remote._connecting is None


async def test_a_stopping_agent_closes_its_channels_without_waiting_for_gateways(
    tmp_path: Path,
) -> None:
    """A deleted pod's agent must not wait out aiohttp's shutdown timeout (60 s) for the
    gateways that hold a channel to it: an idle channel is closed at once, a busy one once
    its call is answered."""
    env = Environment("python3.12", work_dir=tmp_path / "env", log_sink=lambda line: None)
    app = make_app(env)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}"
    await env.start()
    serving, idle = RemoteEnvironment(url), RemoteEnvironment(url)
    try:
        await serving.specialize(make_spec(CODE))
        idle.connect_ahead()
        await wait_until(lambda: len(app[CHANNELS].busy) == 1)
        slow = asyncio.create_task(serving.invoke(make_request(b'{"sleep": 1}')))
        await wait_until(lambda: len(app[CHANNELS].busy) == 2 and env.state == EnvState.BUSY)
        stopping = asyncio.create_task(runner.cleanup())
        await wait_until(lambda: len(app[CHANNELS].busy) == 1)  # the idle one is closed
        assert not slow.done()  # the busy one is still in its call
        result = await slow
        assert json.loads(result.payload)["got"] == {"sleep": 1}
        await asyncio.wait_for(stopping, 10)  # not aiohttp's 60 s
        assert not app[CHANNELS].busy
    finally:
        await serving.close()
        await idle.close()
        if runner.server is not None:
            await runner.cleanup()
        await env.stop()
