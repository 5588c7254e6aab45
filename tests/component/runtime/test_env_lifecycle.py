"""Errors, init errors, timeouts, crashes, one invocation at a time, the log tail, shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from kubelambda.runtime.errors import EnvironmentBusy, EnvironmentStateError
from kubelambda.runtime.provider import ProcessProvider
from kubelambda.runtime.spec import CodeRef, EnvState

from .helpers import gone, make_request, make_spec, wait_until

FLEXIBLE = """
import os, signal, sys, time
print("init ran")
def handler(event, context):
    action = event.get("action")
    if action == "sleep":
        time.sleep(event["seconds"])
    elif action == "raise":
        def inner():
            raise ValueError("boom")
        inner()
    elif action == "exit":
        print("about to exit")
        os._exit(event["code"])
    elif action == "print":
        print(event["text"] * event.get("times", 1))
    elif action == "big":
        return "x" * event["size"]
    elif action == "write":
        with open(os.path.join(os.environ["TMPDIR"], "blob"), "wb") as f:
            f.write(b"0" * event["size"])
    return {"pid": os.getpid(), "action": action}
"""


def _req(**event: object) -> bytes:
    return json.dumps(event).encode()


async def test_handler_error_has_type_message_and_stack_trace(
    provider: ProcessProvider, logs: list[str]
) -> None:
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec({"app.py": FLEXIBLE}))
    result = await env.invoke(make_request(_req(action="raise")))
    assert result.function_error == "Unhandled"
    error = json.loads(result.payload)
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "boom"
    trace = "".join(error["stackTrace"])
    assert "app.py" in trace and "in inner" in trace and "bootstrap.py" not in trace
    assert any(line.startswith("[ERROR] ValueError: boom") for line in logs)
    assert any("Error Type" not in line for line in logs if line.startswith("REPORT"))
    ok = await env.invoke(make_request(_req(action="none")))  # the environment carries on
    assert ok.function_error is None and ok.init_duration_ms is None


@pytest.mark.parametrize(
    ("code", "handler", "error_type", "message"),
    [
        ({"app.py": "x = 1\n"}, "missing.handler", "Runtime.ImportModuleError", "missing"),
        ({"app.py": "x = 1\n"}, "app.handler", "Runtime.HandlerNotFound", "handler"),
        ({"app.py": "def handler(:\n"}, "app.handler", "Runtime.UserCodeSyntaxError", "app"),
        ({"app.py": "raise RuntimeError('bad init')\n"}, "app.handler", "RuntimeError", "bad"),
        ({"app.py": "x = 1\n"}, "nodot", "Runtime.MalformedHandlerName", "nodot"),
    ],
)
# A stop during the re-init's release once left its socket to the garbage collector.
@pytest.mark.filterwarnings(
    "error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning"
)
async def test_init_errors_reach_the_next_invoke(
    provider: ProcessProvider,
    logs: list[str],
    code: dict[str, str],
    handler: str,
    error_type: str,
    message: str,
) -> None:
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec(code, handler=handler))
    for _ in range(2):  # Lambda re-runs a failed init for each invoke
        result = await env.invoke(make_request())
        assert result.function_error == "Unhandled"
        error = json.loads(result.payload)
        assert error["errorType"] == error_type and message in error["errorMessage"]
        assert result.init_duration_ms is not None
    assert any(line.startswith("INIT_REPORT") and error_type in line for line in logs)


async def test_missing_custom_bootstrap_is_an_invalid_entrypoint(provider: ProcessProvider) -> None:
    env = await provider.start_environment("provided.al2023")
    await env.specialize(make_spec({"README": "no bootstrap"}, runtime="provided.al2023"))
    result = await env.invoke(make_request())
    assert json.loads(result.payload)["errorType"] == "Runtime.InvalidEntrypoint"


async def test_timeout_kills_and_reinitializes(provider: ProcessProvider, logs: list[str]) -> None:
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec({"app.py": FLEXIBLE}, timeout=1.0))
    first = await env.invoke(make_request(_req(action="none")))
    old_pid = json.loads(first.payload)["pid"]
    request = make_request(_req(action="sleep", seconds=30))
    started = time.monotonic()
    result = await env.invoke(request)
    assert 1.0 <= time.monotonic() - started < 2.0
    assert env.alive and env.pid != old_pid  # a fresh runtime is already on its way
    assert result.function_error == "Unhandled"
    error = json.loads(result.payload)
    assert error["errorType"] == "Sandbox.Timedout"
    pattern = (
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
        + re.escape(request.request_id)
        + r" Task timed out after 1\.00 seconds"
    )
    assert re.fullmatch(pattern, error["errorMessage"])
    await wait_until(lambda: gone(old_pid))  # the runtime was killed
    assert any(re.fullmatch(pattern, line) for line in logs)
    assert any(line.startswith("REPORT") and "Status: timeout" in line for line in logs)
    after = await env.invoke(make_request(_req(action="none"), log_tail=True))
    assert after.function_error is None
    assert after.init_duration_ms is not None  # re-initialized
    assert after.log_tail is not None and "Init Duration" in after.log_tail
    assert json.loads(after.payload)["pid"] != old_pid


async def test_crash_mid_invoke_is_an_exit_error_and_recovers(provider: ProcessProvider) -> None:
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec({"app.py": FLEXIBLE}, timeout=30.0))
    request = make_request(_req(action="exit", code=3), log_tail=True)
    started = time.monotonic()
    result = await env.invoke(request)
    assert time.monotonic() - started < 1.0
    error = json.loads(result.payload)
    assert result.function_error == "Unhandled"
    assert error == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request.request_id} Error: Runtime exited with error: "
        "exit status 3",
    }
    assert result.log_tail is not None and "about to exit" in result.log_tail
    again = await env.invoke(make_request(_req(action="none")))
    assert again.function_error is None and again.init_duration_ms is not None


async def test_runtime_killed_from_outside_mid_invoke(provider: ProcessProvider) -> None:
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec({"app.py": FLEXIBLE}, timeout=30.0))
    await env.invoke(make_request(_req(action="none")))
    pid = env.pid
    assert pid is not None
    task = asyncio.create_task(env.invoke(make_request(_req(action="sleep", seconds=30))))
    await wait_until(lambda: env.state == EnvState.BUSY)
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    result = await asyncio.wait_for(task, 1.0)
    assert time.monotonic() - started < 1.0
    assert json.loads(result.payload)["errorMessage"].endswith("signal: killed")
    assert (await env.invoke(make_request(_req(action="none")))).function_error is None


async def test_second_concurrent_invoke_is_refused(provider: ProcessProvider) -> None:
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec({"app.py": FLEXIBLE}))
    first = asyncio.create_task(env.invoke(make_request(_req(action="sleep", seconds=0.5))))
    await wait_until(lambda: env.state == EnvState.BUSY)
    started = time.monotonic()
    with pytest.raises(EnvironmentBusy):
        await env.invoke(make_request(_req(action="none")))
    assert time.monotonic() - started < 0.05  # refused at once, never queued
    assert (await first).function_error is None
    assert env.state == EnvState.READY


async def test_invoke_before_specialize_is_refused(provider: ProcessProvider) -> None:
    env = await provider.start_environment("python3.12")
    with pytest.raises(EnvironmentStateError):
        await env.invoke(make_request())
    await env.specialize(make_spec({"app.py": FLEXIBLE}))
    with pytest.raises(EnvironmentStateError):
        await env.specialize(make_spec({"app.py": FLEXIBLE}))


async def test_log_tail_holds_this_invocation_and_its_report(provider: ProcessProvider) -> None:
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec({"app.py": FLEXIBLE}))
    request = make_request(_req(action="print", text="hello-tail"), log_tail=True)
    result = await env.invoke(request)
    assert result.log_tail is not None
    lines = result.log_tail.splitlines()
    assert lines[0] == f"START RequestId: {request.request_id} Version: $LATEST"
    assert "hello-tail" in lines and "init ran" not in lines
    assert lines[-2] == f"END RequestId: {request.request_id}"
    assert re.match(
        rf"REPORT RequestId: {request.request_id}\s+Duration: [\d.]+ ms\s+Billed Duration: \d+ ms"
        r"\s+Memory Size: 128 MB\s+Max Memory Used: \d+ MB",
        lines[-1],
    )
    big = await env.invoke(
        make_request(_req(action="print", text="0123456789", times=1000), log_tail=True)
    )
    assert big.log_tail is not None and len(big.log_tail.encode()) <= 4096
    assert big.log_tail.splitlines()[-1].startswith("REPORT RequestId")
    quiet = await env.invoke(make_request(_req(action="none")))
    assert quiet.log_tail is None


async def test_response_over_6mb_is_refused(provider: ProcessProvider) -> None:
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec({"app.py": FLEXIBLE}))
    result = await env.invoke(make_request(_req(action="big", size=7 * 1024 * 1024)))
    error = json.loads(result.payload)
    assert result.function_error == "Unhandled"
    assert error["errorType"] == "Function.ResponseSizeTooLarge"
    assert "6291456 bytes" in error["errorMessage"]
    ok = await env.invoke(make_request(_req(action="big", size=5 * 1024 * 1024)))
    assert ok.function_error is None and len(ok.payload) == 5 * 1024 * 1024 + 2


async def test_files_in_tmp_are_capped_at_ephemeral_storage(provider: ProcessProvider) -> None:
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec({"app.py": FLEXIBLE}, ephemeral_storage=1))
    small = await env.invoke(make_request(_req(action="write", size=512 * 1024)))
    assert small.function_error is None
    big = await env.invoke(make_request(_req(action="write", size=2 * 1024 * 1024)))
    assert json.loads(big.payload)["errorType"] == "OSError"  # EFBIG: file too large


async def test_stop_is_graceful_then_forceful(provider: ProcessProvider) -> None:
    stubborn = {
        "app.py": "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "def handler(event, context):\n    return 1\n"
    }
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec(stubborn))
    await env.invoke(make_request())
    pid = env.pid
    assert pid is not None
    started = time.monotonic()
    await provider.stop_environment(env)
    assert 0.9 <= time.monotonic() - started < 3.0  # waited the 1 s grace, then SIGKILL
    assert env.state == EnvState.STOPPED and not env.alive and gone(pid)
    polite = await provider.start_environment("python3.12")
    await polite.specialize(make_spec({"app.py": FLEXIBLE}))
    await polite.invoke(make_request(_req(action="none")))
    started = time.monotonic()
    await polite.stop()
    assert time.monotonic() - started < 0.5  # SIGTERM was enough


async def test_json_log_format(provider: ProcessProvider, logs: list[str]) -> None:
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec(CodeRef(inline={"app.py": FLEXIBLE}), log_format="JSON"))
    await env.invoke(make_request(_req(action="none")))
    records = [json.loads(line) for line in logs if line.startswith('{"time"')]
    kinds = [record["type"] for record in records]
    assert "platform.start" in kinds and "platform.report" in kinds
    report = next(r for r in records if r["type"] == "platform.report")["record"]
    assert report["metrics"]["memorySizeMB"] == 128 and "initDurationMs" in report["metrics"]


@pytest.mark.filterwarnings(
    "error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning"
)
async def test_init_phase_is_bounded(tmp_path: Path) -> None:
    provider = ProcessProvider(tmp_path / "envs", log_sink=lambda line: None, init_timeout=0.5)
    try:
        env = await provider.start_environment("python3.12")
        slow = {"app.py": "import time\ntime.sleep(30)\ndef handler(e, c):\n    return 1\n"}
        await env.specialize(make_spec(slow))
        started = time.monotonic()
        result = await env.invoke(make_request())
        assert time.monotonic() - started < 2.0
        error = json.loads(result.payload)
        assert error["errorType"] == "Sandbox.Timedout" and "0.50 seconds" in error["errorMessage"]
    finally:
        await provider.stop_all()
