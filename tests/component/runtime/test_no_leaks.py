"""No environment process outlives its parent, even when the parent is SIGKILLed."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import psutil

from .helpers import SHELL_BOOTSTRAP, gone, wait_until

# A custom runtime that leaves a grandchild behind (`sleep`) before serving.
SPAWNING_BOOTSTRAP = SHELL_BOOTSTRAP.replace("set -eu\n", "set -eu\nsleep 600 &\n", 1)

PARENT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    import psutil
    from kubelambda.runtime.provider import ProcessProvider
    from kubelambda.runtime.spec import CodeRef, EnvironmentSpec, InvokeRequest

    async def main() -> None:
        provider = ProcessProvider(Path(sys.argv[1]), log_sink=lambda line: None)
        spec = EnvironmentSpec(
            function_name="leaky", function_arn="arn:aws:lambda:us-east-1:0:function:leaky",
            runtime="provided.al2023", handler="x",
            code=CodeRef(inline={"bootstrap": sys.argv[2]}))
        served = await provider.start_environment("provided.al2023")
        await served.specialize(spec)
        await served.invoke(InvokeRequest(request_id="r1", invoked_function_arn="a"))
        warm = await provider.start_environment("python3.12")
        pids = []
        for env in (served, warm):
            pids.append(env.pid)
            pids += [c.pid for c in psutil.Process(env.pid).children(recursive=True)]
        print(json.dumps(pids), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_killing_the_parent_kills_every_environment_process(tmp_path: Path) -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PARENT,
        str(tmp_path / "envs"),
        SPAWNING_BOOTSTRAP,
        stdout=asyncio.subprocess.PIPE,
    )
    assert parent.stdout is not None
    line = await asyncio.wait_for(parent.stdout.readline(), 30)
    pids: list[int] = json.loads(line)
    commands = [" ".join(psutil.Process(pid).cmdline()) for pid in pids]
    assert any("sleep 600" in command for command in commands)  # the grandchild
    assert any("kubelambda.runtime.shim" in command for command in commands)
    assert len(pids) >= 5  # two runtimes, their guardians, the grandchild (and curl)
    parent.kill()
    await parent.wait()
    await wait_until(lambda: all(gone(pid) for pid in pids), within=5.0)
