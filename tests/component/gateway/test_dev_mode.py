"""`kubelambda dev` as a user meets it: the ready line, hot reload, bad manifests, the AWS CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.component.gateway.conftest import KUBELAMBDA, DevGateway

HOT_MANIFEST = """\
apiVersion: kubelambda.dev/v1alpha1
kind: Function
metadata: {name: hot}
spec:
  runtime: python3.12
  handler: app.handler
  code: {path: ./hot}
"""
HOT_CODE = """\
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"code": "%s"}
"""


def _hot_folder(tmp_path: Path, code: str) -> Path:
    """A dev folder serving `hot` (HOT_MANIFEST) with `code` as its app.py."""
    folder = tmp_path / "fns"
    (folder / "hot").mkdir(parents=True)
    (folder / "hot.yaml").write_text(HOT_MANIFEST)
    (folder / "hot" / "app.py").write_text(code)
    return folder


def test_ready_line_lists_functions_and_warns_once_about_the_interpreter(tmp_path: Path) -> None:
    folder = _hot_folder(tmp_path, HOT_CODE % "v1")
    dev = DevGateway(folder, "--no-reload")
    try:
        log = dev.log()
        assert f"{dev.url}/2015-03-31/functions/hot/invocations" in log
        local = f"python{sys.version_info.major}.{sys.version_info.minor}"
        if local != "python3.12":
            assert log.count(f"python3.12 functions run on the local {local} interpreter") == 1
    finally:
        dev.stop()


def test_hot_reload_serves_new_code_and_fails_no_call_in_flight(tmp_path: Path) -> None:
    folder = _hot_folder(tmp_path, HOT_CODE % "v1")
    code = folder / "hot" / "app.py"
    dev = DevGateway(folder)
    url = f"{dev.url}/2015-03-31/functions/hot/invocations"
    results: list[tuple[float, int, str]] = []
    progress = asyncio.Event()

    async def until(enough: Callable[[], bool]) -> None:
        while not enough():
            progress.clear()
            await asyncio.wait_for(progress.wait(), timeout=30)

    async def caller(session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            async with session.post(url, data=json.dumps({"sleep": 0.2})) as response:
                body = await response.read()
                error = response.headers.get("X-Amz-Function-Error")
                label = json.loads(body).get("code", "?") if not error else f"error {body!r}"
                results.append((started, response.status, label))
                progress.set()

    async def scenario() -> float:
        stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:
            callers = [asyncio.create_task(caller(session, stop)) for _ in range(4)]
            await until(lambda: sum(1 for r in results if r[2] == "v1") >= 8)
            code.write_text(HOT_CODE % "v2")
            await asyncio.to_thread(dev.wait_for_log, r"^reloaded: ")
            reloaded_at = time.monotonic()
            await until(lambda: sum(1 for r in results if r[0] > reloaded_at) >= 8)
            stop.set()
            await asyncio.gather(*callers)
            return reloaded_at

    try:
        reloaded_at = asyncio.run(scenario())
    finally:
        dev.stop()
    assert all(status == 200 for _, status, _ in results), results
    assert {label for _, _, label in results} == {"v1", "v2"}
    after = [label for started, _, label in results if started > reloaded_at]
    assert after and set(after) == {"v2"}, after


def test_invalid_manifest_names_file_and_field(tmp_path: Path) -> None:
    folder = tmp_path / "fns"
    folder.mkdir()
    bad = folder / "bad.yaml"
    bad.write_text(
        HOT_MANIFEST.replace("handler: app.handler", "handler: app.handler\n  memorySize: 64")
    )
    done = subprocess.run(
        [KUBELAMBDA, "dev", str(folder), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert (
        f"{bad}: Function/hot: spec.memorySize: must be between 128 and 10240 (got 64)"
        in done.stderr
    )


def test_aws_cli_invoke_and_errors(gateway: DevGateway, tmp_path: Path) -> None:
    aws = str(Path(sys.executable).parent / "aws")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }
    out = tmp_path / "out.json"
    base = [aws, "lambda", "invoke", "--endpoint-url", gateway.url]
    done = subprocess.run(
        [
            *base,
            "--function-name",
            "echo",
            "--qualifier",
            "2",
            "--payload",
            '{"via": "cli"}',
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    meta = json.loads(done.stdout)
    assert meta == {"StatusCode": 200, "ExecutedVersion": "2"}
    assert json.loads(out.read_text())["event"] == {"via": "cli"}

    done = subprocess.run(
        [*base, "--function-name", "fail", "--log-type", "Tail", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    meta = json.loads(done.stdout)
    assert meta["FunctionError"] == "Unhandled" and "LogResult" in meta
    assert json.loads(out.read_text())["errorType"] == "InsufficientFunds"

    done = subprocess.run(
        [*base, "--function-name", "nope", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode != 0
    assert "ResourceNotFoundException" in done.stderr


def test_kubelambda_invoke_prints_payload_version_and_tail(gateway: DevGateway) -> None:
    done = subprocess.run(
        [
            KUBELAMBDA,
            "invoke",
            "echo:live",
            "--payload",
            '{"a": 1}',
            "--tail",
            "--endpoint",
            gateway.url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["event"] == {"a": 1}
    assert "executed version: " in done.stderr and "REPORT RequestId:" in done.stderr
    failed = subprocess.run(
        [KUBELAMBDA, "invoke", "fail", "--endpoint", gateway.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1 and "function error: Unhandled" in failed.stderr


PLACED_CODE = """\
import os

def handler(event, context):
    return {"cpus": sorted(os.sched_getaffinity(0))}
"""


def _runtime_cpus(dev: DevGateway) -> list[int]:
    request = urllib.request.Request(
        f"{dev.url}/2015-03-31/functions/hot/invocations", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        cpus: list[int] = json.loads(response.read())["cpus"]
        return cpus


def test_the_gateway_runs_on_one_cpu_and_a_lone_call_beside_it_unless_told_not_to(
    tmp_path: Path,
) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("needs two CPUs allowed to this process")
    dev = DevGateway(_hot_folder(tmp_path / "pinned", PLACED_CODE), "--no-reload")
    try:
        gateway_cpus = sorted(os.sched_getaffinity(dev.proc.pid))  # its loop's thread
        assert gateway_cpus == [max(allowed)]
        assert _runtime_cpus(dev) == gateway_cpus
    finally:
        dev.stop()
    free = DevGateway(_hot_folder(tmp_path / "free", PLACED_CODE), "--no-reload", "--no-pinning")
    try:
        assert sorted(os.sched_getaffinity(free.proc.pid)) == allowed
        assert _runtime_cpus(free) == allowed
    finally:
        free.stop()
