"""Helpers for the execution-environment component tests (specs, requests, zips, waiting, an
agent on loopback)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import os
import time
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web

from kubelambda.runtime.agent_app import make_app
from kubelambda.runtime.environment import Environment
from kubelambda.runtime.spec import CodeRef, EnvironmentSpec, InvokeRequest

ARN = "arn:aws:lambda:us-east-1:000000000000:function:{name}"

SHELL_BOOTSTRAP = """#!/bin/sh
# A provided.al2023-style custom runtime: POSIX shell and curl, nothing else.
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
headers="$(mktemp)"
while :; do
  event="$(curl -sS -D "$headers" "$api/invocation/next")"
  rid="$(sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: *\\([^[:space:]]*\\).*/\\1/p' \
    "$headers" | tr -d '\\r')"
  curl -sS -o /dev/null -X POST "$api/invocation/$rid/response" \
    -H 'Content-Type: application/json' \
    -d "{\\"echo\\": $event, \\"handler\\": \\"$_HANDLER\\", \\"rid\\": \\"$rid\\"}"
done
"""


def make_spec(
    code: CodeRef | dict[str, str],
    *,
    name: str = "hello",
    runtime: str = "python3.12",
    handler: str | None = "app.handler",
    **fields: Any,
) -> EnvironmentSpec:
    ref = code if isinstance(code, CodeRef) else CodeRef(inline=code)
    return EnvironmentSpec(
        function_name=name,
        function_arn=ARN.format(name=name),
        runtime=runtime,
        handler=handler,
        code=ref,
        **fields,
    )


_counter = iter(range(1, 1_000_000))


def make_request(payload: bytes = b"{}", **fields: Any) -> InvokeRequest:
    fields.setdefault("request_id", f"req-{next(_counter):04d}-0000-0000-0000-000000000000")
    fields.setdefault("invoked_function_arn", ARN.format(name="hello"))
    return InvokeRequest(payload=payload, **fields)


def zip_bytes(files: dict[str, str], modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = ((modes or {}).get(name, 0o644) | 0o100000) << 16
            archive.writestr(info, content)
    return buffer.getvalue()


BIG_ZIP_MB = 20  # issue 16's "ordinary code": held whole, it peaked the agent at 94 MB


def big_zip(path: Path) -> str:
    """Write a zip of `BIG_ZIP_MB` incompressible MiB (`blob.bin`) and `app.handler`, which
    returns the blob's size; returns the zip's sha256."""
    handler = (
        "import os\n\ndef handler(event, context):\n"
        "    return os.path.getsize(os.path.join(os.path.dirname(__file__), 'blob.bin'))\n"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("app.py", handler)
        archive.writestr("blob.bin", os.urandom(BIG_ZIP_MB * 1024 * 1024))
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def status_kb(pid: int, field: str) -> int:
    """A kB figure (VmRSS, VmHWM, ...) of /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def reset_peak(pid: int) -> None:
    """VmHWM := VmRSS, so a later VmHWM counts only what came after."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def wait_until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for `condition` with a bound, yielding to the event loop between checks."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.01)


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@contextlib.asynccontextmanager
async def serve_agent(
    work_dir: Path, *, token: str | None = None, first: Any = None
) -> AsyncIterator[tuple[Environment, str]]:
    """A warm environment behind the agent's control API on loopback, and its URL; `first`: a
    middleware put before the app's own."""
    env = Environment("python3.12", work_dir=work_dir, log_sink=lambda line: None)
    app = make_app(env, token=token)
    if first is not None:
        app.middlewares.insert(0, first)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    await env.start()
    try:
        yield env, f"http://{host}:{port}"
    finally:
        await runner.cleanup()
        await env.stop()
