"""The runtime in its own container: an Environment with shared folders and a real `sh` shim.

The "runtime container" here is the shim (`handshake.SHIM`, or the warm Python shim) started by
the test as a process, with an entry point that runs awslambdaric, as the official base image's
does; the agent side is the real Environment. Release, logs, timeout and crash (each re-inits in
the same shim) and a dead runtime container are checked, and which runtime served: the Python
shim runs our bootstrap (shipped by the agent into the handshake folder) on the pipe channel
where dev mode would, awslambdaric over HTTP otherwise; the `sh` shim always the entry point.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubelambda.runtime.environment import Environment
from kubelambda.runtime.handshake import PYSHIM, SHIM
from kubelambda.runtime.prepare import SharedDirs
from kubelambda.runtime.spec import EnvState

from .helpers import make_request, make_spec, wait_until

CODE = """
import os, sys, time
print("init in", os.getcwd())
def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit"):
        os._exit(event["exit"])
    print("handling", event)
    runtime = type(context).__module__  # whose context object: ours or awslambdaric's
    return {
        "pid": os.getpid(),
        "fn": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        "runtime": runtime,
        "file": sys.modules[runtime].__file__,
        "wrapped": os.environ.get("WRAPPED"),
    }
"""
OURS, RIC = "kubelambda.runtime.bootstrap", "awslambdaric.lambda_context"
# The official images' /lambda-entrypoint.sh HANDLER: exec the runtime interface client, behind
# AWS_LAMBDA_EXEC_WRAPPER when set (as their /var/runtime/bootstrap does).
ENTRYPOINT = """#!/bin/sh
[ -z "$AWS_LAMBDA_EXEC_WRAPPER" ] || exec "$AWS_LAMBDA_EXEC_WRAPPER" "$PYTHON" -m awslambdaric "$1"
exec "$PYTHON" -m awslambdaric "$1"
"""
WRAPPER = '#!/bin/sh\nexport WRAPPED=yes\nexec "$@"\n'


@pytest.fixture(params=["sh", "python"])
async def container_env(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Environment, list[str], int]]:
    """The runtime container held by the `sh` shim, or by the warm Python shim (pyshim.py,
    what a Python base image runs: awslambdaric and our bootstrap pre-imported, each release
    a fork)."""
    async with _container(tmp_path, request.param) as running:
        yield running


@contextlib.asynccontextmanager
async def _container(
    tmp_path: Path, shim_kind: str
) -> AsyncIterator[tuple[Environment, list[str], int]]:
    # A folder name too long for a Unix socket's sun_path, as an emptyDir's on a node can be.
    tmp_path = tmp_path / ("d" * 60)
    shared = SharedDirs(tmp_path / "handshake", tmp_path / "task", tmp_path / "layers")
    # The emptyDir exists before either container starts: the shim may come up before the agent.
    shared.handshake.mkdir(parents=True)
    entry = tmp_path / "lambda-entrypoint.sh"
    entry.write_text(ENTRYPOINT)
    entry.chmod(0o755)
    logs: list[str] = []
    env = Environment(
        "python3.12", work_dir=tmp_path / "agent", log_sink=logs.append, shared=shared
    )
    handshake, task = str(shared.handshake), str(shared.task_root)
    program = ["sh", "-c", SHIM, "shim"]
    if shim_kind == "python":
        program = [sys.executable, "-c", PYSHIM]
    shim = await asyncio.create_subprocess_exec(
        *program,
        handshake,
        task,
        "handler",
        str(entry),
        env={"PATH": os.environ["PATH"], "PYTHON": sys.executable},
        stdin=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await env.start()
        yield env, logs, shim.pid
    finally:
        await env.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shim.pid, signal.SIGKILL)
        await asyncio.wait_for(shim.wait(), 5.0)


def _event(**event: object) -> bytes:
    return json.dumps(event).encode()


async def test_released_runtime_serves_and_recovers(
    container_env: tuple[Environment, list[str], int],
) -> None:
    env, logs, _ = container_env
    assert env.state == EnvState.WARM
    await env.specialize(make_spec({"app.py": CODE}, timeout=1.0))
    first = await env.invoke(make_request(_event(n=1), log_tail=True))
    body = json.loads(first.payload)
    assert first.function_error is None and body["fn"] == "hello", "\n".join(logs)
    python_shim = body["runtime"] == OURS
    if python_shim:  # our bootstrap, from the files the agent wrote, on the pipe channel
        assert body["file"].startswith(str(env_handshake(env))), body
        assert env.carrier == "pipe"
    else:  # the `sh` shim: the image's entry point, awslambdaric over HTTP
        assert body["runtime"] == RIC and env.carrier == "http"
    assert first.init_duration_ms is not None and first.max_memory_used_mb > 0
    assert first.log_tail is not None and "handling {'n': 1}" in first.log_tail
    assert any(line.startswith("init in ") and line.endswith("task") for line in logs)

    timed_out = await env.invoke(make_request(_event(sleep=5)))
    assert timed_out.function_error == "Unhandled"
    assert json.loads(timed_out.payload)["errorType"] == "Sandbox.Timedout"
    again = await env.invoke(make_request(_event(n=2)))  # re-init in the same shim
    assert again.function_error is None and again.init_duration_ms is not None
    assert json.loads(again.payload)["pid"] != body["pid"]
    assert json.loads(again.payload)["runtime"] == body["runtime"]
    assert env.carrier == ("pipe" if python_shim else "http")  # the new child reconnected

    crashed = await env.invoke(make_request(_event(exit=3)))
    error = json.loads(crashed.payload)
    assert error["errorType"] == "Runtime.ExitError" and "exit status 3" in error["errorMessage"]
    last = await env.invoke(make_request(_event(n=3)))
    assert last.function_error is None and last.init_duration_ms is not None


async def test_a_dead_runtime_container_fails_the_invocation(
    container_env: tuple[Environment, list[str], int],
) -> None:
    env, _, shim_pid = container_env
    await env.specialize(make_spec({"app.py": CODE}, timeout=5.0))
    assert (await env.invoke(make_request(_event(n=1)))).function_error is None
    invocation = asyncio.ensure_future(env.invoke(make_request(_event(sleep=4))))
    os.killpg(shim_pid, signal.SIGKILL)  # before or during the call: a Runtime.ExitError
    result = await asyncio.wait_for(invocation, 5.0)
    assert json.loads(result.payload)["errorType"] == "Runtime.ExitError"


def env_handshake(env: Environment) -> Path:
    shared = env._shared  # what the test gave it
    assert shared is not None
    return shared.handshake


async def test_the_python_shim_keeps_awslambdaric_where_dev_mode_keeps_http(
    tmp_path: Path,
) -> None:
    """A wrapper (AWS_LAMBDA_EXEC_WRAPPER): dev mode execs it, on HTTP; here the image's entry
    point runs it, with awslambdaric behind it."""
    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(0o755)
    async with _container(tmp_path, "python") as (env, logs, _):
        wrapped = make_spec({"app.py": CODE}, environment={"AWS_LAMBDA_EXEC_WRAPPER": str(wrapper)})
        await env.specialize(wrapped)
        result = await env.invoke(make_request(_event(n=1)))
        assert result.function_error is None, "\n".join(logs)
        body = json.loads(result.payload)
        assert (body["runtime"], body["wrapped"], env.carrier) == (RIC, "yes", "http")


async def test_a_python_shim_without_our_files_falls_back_to_awslambdaric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent that ships no bootstrap (an older one): the shim runs awslambdaric, HTTP."""
    monkeypatch.setattr("kubelambda.runtime.container.bootstrap_files", dict)
    async with _container(tmp_path, "python") as (env, logs, _):
        assert not (env_handshake(env) / "python").exists()
        await env.specialize(make_spec({"app.py": CODE}))
        result = await env.invoke(make_request(_event(n=1)))
        assert result.function_error is None, "\n".join(logs)
        assert json.loads(result.payload)["runtime"] == RIC and env.carrier == "http"


async def test_only_the_released_runtime_gets_the_pipe_channel(
    container_env: tuple[Environment, list[str], int],
) -> None:
    """Anyone else connecting to the channel's socket is refused: no Runtime API for it."""
    env, logs, _ = container_env
    await env.specialize(make_spec({"app.py": CODE}))
    assert (await env.invoke(make_request(_event(n=1)))).function_error is None
    path = env_handshake(env) / "runtime.sock"
    if not path.exists():
        pytest.fail("the agent listens for the pipe channel in the handshake folder")
    stranger = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    here = os.getcwd()
    os.chdir(path.parent)
    try:
        stranger.connect(path.name)
    finally:
        os.chdir(here)
    with stranger:
        stranger.settimeout(5.0)
        assert await asyncio.to_thread(stranger.recv, 1) == b""  # closed by the agent
    assert (await env.invoke(make_request(_event(n=2)))).function_error is None, "\n".join(logs)


STREAMER = """
import os
def handler(event, context):
    if event.get("whole"):
        return {"pid": os.getpid(), "runtime": type(context).__module__}
    def chunks():
        yield "one;"
        yield str(os.getpid())
    return chunks()
"""


class _Sink:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def begin(self, content_type: str) -> None:
        pass

    async def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)


async def test_our_bootstrap_streams_over_http_between_pipe_calls(tmp_path: Path) -> None:
    """As in dev mode: a streamed response goes over HTTP, the next event comes on the pipe."""
    async with _container(tmp_path, "python") as (env, logs, _):
        await env.specialize(make_spec({"app.py": STREAMER}))
        sink = _Sink()
        streamed = await env.invoke(make_request(_event()), sink)
        assert streamed.streamed and streamed.function_error is None, "\n".join(logs)
        whole = json.loads((await env.invoke(make_request(_event(whole=True)))).payload)
        assert b"".join(sink.chunks) == f"one;{whole['pid']}".encode()
        assert whole["runtime"] == OURS and env.carrier == "pipe"


@pytest.mark.parametrize("shim_kind", ["python", "sh"])
async def test_the_python_shims_child_is_released_on_its_connection(
    tmp_path: Path, shim_kind: str
) -> None:
    """The Python shim's child, forked ahead, connected before it waited: its release (the
    first and a re-init's) is one frame on that connection, which then carries the Runtime API,
    with no release files or line to read. The `sh` shim still gets the files."""
    async with _container(tmp_path, shim_kind) as (env, logs, _):
        if shim_kind == "python":  # as a warm pod's, long before its specialization
            sockets = env._link.sockets if env._link is not None else None
            await wait_until(lambda: sockets is not None and sockets.connected_ahead)
        await env.specialize(make_spec({"app.py": CODE}))
        crashed = await env.invoke(make_request(_event(exit=3)))
        assert json.loads(crashed.payload)["errorType"] == "Runtime.ExitError"
        again = await env.invoke(make_request(_event(n=2)))  # a re-init: a new child
        assert again.function_error is None and again.init_duration_ms is not None, logs
        written = sorted(p.name for p in env_handshake(env).glob("release-*"))
        if shim_kind == "python":
            assert written == [] and env.carrier == "pipe"
        else:
            names = ("release-{}.env", "release-{}.json")
            assert written == [name.format(n) for n in (1, 2) for name in names]


async def test_a_child_whose_connection_the_agent_refused_reads_the_release_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As an older agent does (it keeps only the released runtime's connection): the child
    sees its connection closed, reads the release line and files, and connects after it."""
    monkeypatch.setattr("kubelambda.runtime.childsockets._parent_of", lambda pid: None)
    async with _container(tmp_path, "python") as (env, logs, _):
        await env.specialize(make_spec({"app.py": CODE}))
        result = await env.invoke(make_request(_event(n=1)))
        assert result.function_error is None, "\n".join(logs)
        assert json.loads(result.payload)["runtime"] == OURS and env.carrier == "pipe"
        written = sorted(p.name for p in env_handshake(env).glob("release-*"))
        assert written == ["release-1.env", "release-1.json"]
