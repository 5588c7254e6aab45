"""The pipe channel (our bootstrap's Runtime API as frames on the shim's socketpair) against
HTTP: the same scenarios give the same results, errors, timeouts, tails and re-inits."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from kubelambda.runtime.environment import Environment
from kubelambda.runtime.limits import MAX_RESPONSE_BYTES
from kubelambda.runtime.provider import ProcessProvider
from kubelambda.runtime.release import Channel

from .helpers import ARN, make_request, make_spec

APP = """
import json, os, sys, time
print("init ran")
def handler(event, context):
    action = event.get("action")
    if action == "raise":
        raise ValueError("boom " + event.get("word", ""))
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "big":
        return "x" * event["size"]
    if action == "exit":
        os._exit(3)
    print("handling", context.aws_request_id)
    sys.stderr.write("to stderr\\n")
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 2000,
        "custom": context.client_context.custom if context.client_context else None,
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        "pid": os.getpid(),
    }
"""


@pytest.fixture(params=["pipe", "http"])
async def env(
    request: pytest.FixtureRequest, tmp_path: Path, logs: list[str]
) -> AsyncIterator[Environment]:
    channel: Channel = request.param
    provider = ProcessProvider(tmp_path / "envs", log_sink=logs.append, channel=channel)
    environment = await provider.start_environment("python3.12")
    await environment.specialize(make_spec({"app.py": APP}, timeout=2))
    try:
        yield environment
    finally:
        await provider.stop_all()


def _event(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def _tcp_peers(pid: int | None) -> list[str]:
    assert pid is not None
    return [
        f"{c.raddr.ip}:{c.raddr.port}"
        for c in psutil.Process(pid).net_connections("tcp")
        if c.raddr
    ]


async def test_results_context_and_log_tail(env: Environment) -> None:
    custom = {"custom": {"k": "v"}}
    context = base64.b64encode(json.dumps(custom).encode()).decode()
    for i in range(3):  # the first call and warm ones
        result = await env.invoke(
            make_request(
                _event(n=i),
                log_tail=True,
                client_context=context,
                trace_id="Root=1-5e1b4151-5ac6c58f4a3c1e2f3d4b5a6c",
            )
        )
        assert result.function_error is None
        body = json.loads(result.payload)
        assert body["event"] == {"n": i} and body["request_id"] == result.request_id
        assert body["arn"] == ARN.format(name="hello") and body["remaining_ok"]
        assert body["custom"] == {"k": "v"}
        assert body["trace"] == "Root=1-5e1b4151-5ac6c58f4a3c1e2f3d4b5a6c"
        tail = result.log_tail or ""
        assert tail.startswith(f"START RequestId: {result.request_id}")
        assert f"handling {result.request_id}" in tail and "to stderr" in tail
        assert f"REPORT RequestId: {result.request_id}" in tail
        assert (result.init_duration_ms is not None) == (i == 0)
    # Only HTTP keeps a TCP connection to the Runtime API; the pipe needs none.
    peers = _tcp_peers(env.pid)
    assert (env.address in peers) == (env.channel == "http")


async def test_function_errors_then_carries_on(env: Environment) -> None:
    for word in ("one", "two"):
        result = await env.invoke(make_request(_event(action="raise", word=word)))
        assert result.function_error == "Unhandled"
        error = json.loads(result.payload)
        assert error["errorType"] == "ValueError" and error["errorMessage"] == f"boom {word}"
        assert any("in handler" in line for line in error["stackTrace"])
    ok = await env.invoke(make_request(_event()))
    assert ok.function_error is None and json.loads(ok.payload)["event"] == {}


async def test_timeout_resets_and_the_next_call_reinitializes(env: Environment) -> None:
    first = json.loads((await env.invoke(make_request(_event()))).payload)["pid"]
    result = await env.invoke(make_request(_event(action="sleep", seconds=30)))
    assert result.function_error == "Unhandled"
    assert json.loads(result.payload)["errorType"] == "Sandbox.Timedout"
    after = await env.invoke(make_request(_event()))
    assert after.function_error is None and after.init_duration_ms is not None
    assert json.loads(after.payload)["pid"] != first


async def test_a_crash_is_an_exit_error_and_is_replaced(env: Environment) -> None:
    result = await env.invoke(make_request(_event(action="exit")))
    assert json.loads(result.payload)["errorType"] == "Runtime.ExitError"
    after = await env.invoke(make_request(_event()))
    assert after.function_error is None and after.init_duration_ms is not None


async def test_a_response_over_six_mib_is_refused_and_the_runtime_carries_on(
    env: Environment,
) -> None:
    result = await env.invoke(make_request(_event(action="big", size=MAX_RESPONSE_BYTES + 10)))
    assert result.function_error == "Unhandled"
    assert json.loads(result.payload)["errorType"] == "Function.ResponseSizeTooLarge"
    pid = env.pid
    exact = await env.invoke(make_request(_event(action="big", size=MAX_RESPONSE_BYTES - 2)))
    assert exact.function_error is None and len(exact.payload) == MAX_RESPONSE_BYTES
    assert env.pid == pid, "the same runtime process answered"


@pytest.mark.parametrize("channel", ["pipe", "http"])
async def test_init_errors_are_the_same(channel: Channel, tmp_path: Path, logs: list[str]) -> None:
    provider = ProcessProvider(tmp_path / "envs", log_sink=logs.append, channel=channel)
    try:
        env = await provider.start_environment("python3.12")
        await env.specialize(make_spec({"app.py": "x = 1\n"}, handler="missing.handler"))
        for _ in range(2):
            result = await env.invoke(make_request())
            error = json.loads(result.payload)
            assert error["errorType"] == "Runtime.ImportModuleError"
            assert "missing" in error["errorMessage"] and result.init_duration_ms is not None
    finally:
        await provider.stop_all()


STREAMER = """
import os, time
def handler(event, context):
    if event.get("whole"):
        return {"pid": os.getpid()}
    def chunks():
        yield "one;"
        deadline = time.monotonic() + 20
        while not os.path.exists(event["gate"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield "two;"
        if event.get("fail"):
            raise RuntimeError("broke off")
        yield str(os.getpid())
    return chunks()
"""


class _Sink:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.first = asyncio.Event()

    async def begin(self, content_type: str) -> None:
        pass

    async def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self.first.set()


@pytest.mark.parametrize("channel", ["pipe", "http"])
async def test_our_bootstrap_streams_on_either_channel(
    channel: Channel, tmp_path: Path, logs: list[str]
) -> None:
    """A handler that returns a generator streams while it runs, whichever channel carries the
    rest of the Runtime API; the same process then answers buffered calls again."""
    provider = ProcessProvider(tmp_path / "envs", log_sink=logs.append, channel=channel)
    env = await provider.start_environment("python3.12")
    try:
        await env.specialize(make_spec({"app.py": STREAMER}, timeout=30))
        for round_ in range(2):  # the first call, then a warm one after a buffered call
            gate = tmp_path / f"gate-{round_}"
            sink = _Sink()
            call = asyncio.create_task(env.invoke(make_request(_event(gate=str(gate))), sink))
            await asyncio.wait_for(sink.first.wait(), 60)
            assert not call.done() and not gate.exists()  # the handler is still running
            assert b"".join(sink.chunks) == b"one;"
            gate.touch()
            result = await asyncio.wait_for(call, 60)
            assert result.streamed and result.function_error is None
            assert b"".join(sink.chunks) == f"one;two;{env.pid}".encode()
            whole = await env.invoke(make_request(_event(whole=True)))
            assert json.loads(whole.payload) == {"pid": env.pid}, "the same runtime answered"
        gate = tmp_path / "gate-fail"
        gate.touch()
        sink = _Sink()
        broken = await env.invoke(make_request(_event(gate=str(gate), fail=True)), sink)
        assert broken.function_error is not None and b"".join(sink.chunks) == b"one;two;"
        after = await env.invoke(make_request(_event(whole=True)))
        assert after.function_error is None, "\n".join(logs[-12:])  # the runtime carried on
    finally:
        await provider.stop_all()
