"""provided.al2023 Zip functions in a runtime container (issue 16, point 6): the shim runs the
function's own `bootstrap` from the task root, or from /opt when a layer brings it, never the
image's /var/runtime/bootstrap (which a Zip never fills). The shim is the real `sh` program
with the argv the operator gives it; the bootstrap is a POSIX shell custom runtime."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubelambda.runtime.environment import Environment
from kubelambda.runtime.handshake import SHIM
from kubelambda.runtime.prepare import SharedDirs
from kubelambda.runtime.spec import CodeRef

from .helpers import SHELL_BOOTSTRAP, make_request, make_spec


@pytest.fixture
async def provided_env(tmp_path: Path) -> AsyncIterator[Environment]:
    shared = SharedDirs(tmp_path / "handshake", tmp_path / "task", tmp_path / "layers")
    # The emptyDir exists before either container starts (the shim may come up first).
    shared.handshake.mkdir()
    env = Environment(
        "provided.al2023", work_dir=tmp_path / "agent", log_sink=lambda line: None, shared=shared
    )
    # The operator's argv for provided.* (podbuilder): `bootstrap` and Lambda's two places,
    # here the test's folders for /var/task and /opt.
    candidates = [str(shared.task_root / "bootstrap"), str(shared.layers_dir / "bootstrap")]
    shim = await asyncio.create_subprocess_exec(
        *("sh", "-c", SHIM, "shim", str(shared.handshake), str(shared.task_root)),
        *("bootstrap", *candidates),
        env={"PATH": os.environ["PATH"]},
        stdin=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await env.start()
        yield env
    finally:
        await env.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shim.pid, signal.SIGKILL)
        await asyncio.wait_for(shim.wait(), 5.0)


async def test_a_zip_bootstrap_in_the_task_root_serves(provided_env: Environment) -> None:
    spec = make_spec({"bootstrap": SHELL_BOOTSTRAP}, runtime="provided.al2023", handler="fn.x")
    await provided_env.specialize(spec)
    result = await provided_env.invoke(make_request(b'{"n": 1}'))
    assert result.function_error is None, result.payload
    body = json.loads(result.payload)
    assert body["echo"] == {"n": 1} and body["handler"] == "fn.x"


async def test_a_bootstrap_from_a_layer_in_opt_serves(provided_env: Environment) -> None:
    layer = CodeRef(inline={"bootstrap": SHELL_BOOTSTRAP})
    spec = make_spec(
        {"handler.txt": "code without a bootstrap"},
        runtime="provided.al2023",
        handler="fn.y",
        layers=[layer],
    )
    await provided_env.specialize(spec)
    result = await provided_env.invoke(make_request(b'{"n": 2}'))
    assert result.function_error is None, result.payload
    assert json.loads(result.payload)["handler"] == "fn.y"
