"""`kubelambda agent`: one execution environment with its control HTTP API (a pod's sidecar).

It serves the Lambda Runtime API on loopback for the runtime process, starts a generic warm
runtime (its own child, or with `--runtime-container` the shim in the pod's runtime container),
optionally specializes it at once (`--spec`, for provisioned concurrency), and serves the control
API for the gateway until SIGTERM, when it stops the runtime gracefully. The control port opens
first and the warm-up runs behind it (/readyz 503 until it is done); a failed warm-up ends the
agent with status 1.
Heavy imports happen in `run()`, so `kubelambda --help` stays fast.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runtime", required=True, help="the runtime of the environment, e.g. python3.12"
    )
    parser.add_argument("--host", default="0.0.0.0", help="control API address (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8080, help="control API port (default 8080)")
    parser.add_argument(
        "--runtime-api-port",
        type=int,
        default=9001,
        help="Lambda Runtime API port on 127.0.0.1 (default 9001; 0 picks a free one)",
    )
    parser.add_argument(
        "--work-dir",
        default=None,
        help="folder for code, /opt and /tmp (default: a new temporary folder)",
    )
    parser.add_argument(
        "--spec",
        default=None,
        metavar="FILE",
        help="an EnvironmentSpec (JSON) to specialize with at start (provisioned concurrency)",
    )
    parser.add_argument(
        "--stop-grace",
        type=float,
        default=2.0,
        help="seconds between SIGTERM and SIGKILL for the runtime at shutdown",
    )
    parser.add_argument(
        "--runtime-start-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the runtime to come up warm (a runtime container may still "
        "be pulling its image; default 30)",
    )
    parser.add_argument(
        "--runtime-container",
        default=None,
        metavar="DIR",
        help="the runtime runs in another container: DIR is the shared handshake folder "
        "(its shim is kubelambda.runtime.handshake.SHIM); default: the agent's own child",
    )
    parser.add_argument(
        "--task-root",
        default="/var/task",
        help="with --runtime-container: the shared code folder, same path in both containers",
    )
    parser.add_argument(
        "--layers-dir",
        default=None,
        help="with --runtime-container: the shared folder the runtime container mounts at /opt",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kubelambda.loop import run_loop  # uvloop, as every role: it is the warm hot path

    spec_json = Path(args.spec).read_bytes() if args.spec else None
    return run_loop(_serve(args, spec_json))


async def _serve(args: argparse.Namespace, spec_json: bytes | None) -> int:
    import asyncio
    import contextlib
    import shutil
    import sys
    import tempfile
    from pathlib import Path

    from aiohttp import web

    from kubelambda.loop import stop_requested
    from kubelambda.runtime.agent_app import make_app
    from kubelambda.runtime.environment import Environment
    from kubelambda.runtime.prepare import SharedDirs
    from kubelambda.runtime.spec import EnvironmentSpec

    owns_dir = args.work_dir is None
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="kubelambda-agent-"))
    shared = None
    if args.runtime_container:
        layers = Path(args.layers_dir) if args.layers_dir else work_dir / "layers"
        shared = SharedDirs(Path(args.runtime_container), Path(args.task_root), layers)
    from kubelambda.runtime.cgroup import CgroupTree

    # The runtime as our child: its own cgroup where the pod lets us (its memorySize, not the
    # generic pod's, is then the cap; otherwise the shim's address-space cap is).
    cgroups = CgroupTree.create() if shared is None else None
    env = Environment(
        args.runtime,
        work_dir=work_dir,
        port=args.runtime_api_port,
        stop_grace=args.stop_grace,
        shared=shared,
        cgroups=cgroups,
        start_timeout=args.runtime_start_timeout,
    )
    stopping = stop_requested()
    import os

    from kubelambda.runtime.agent_app import TOKEN_ENV

    token = os.environ.pop(TOKEN_ENV, "") or None  # popped: the runtime never inherits it
    auth = "token required" if token else f"UNAUTHENTICATED: {TOKEN_ENV} is not set"
    warmed = asyncio.Event()
    runner = web.AppRunner(make_app(env, token, warmed), access_log=None)
    failed: list[BaseException] = []

    async def warm_up() -> None:
        """Behind the open port: /healthz answers at once (liveness never kills a pod still
        waiting for its runtime or fetching its code), /readyz 503 until this is done."""
        try:
            await env.start()
            if spec_json is not None:
                spec = EnvironmentSpec.model_validate_json(spec_json)
                # Code a provisioned pod mounts (ConfigMaps) sits beside its spec file.
                await env.specialize(spec.anchored(Path(args.spec).parent))
        except Exception as exc:  # the pod fails (restartPolicy Never) and is replaced
            failed.append(exc)
            print(f"kubelambda agent: warm-up failed: {exc}", file=sys.stderr, flush=True)
            stopping.set()
            return
        warmed.set()
        print(f"kubelambda agent: warm, Runtime API on {env.address}", file=sys.stderr, flush=True)

    warming: asyncio.Task[None] | None = None
    try:
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        print(
            f"kubelambda agent: {args.runtime} environment, control API on "
            f"{args.host}:{args.port} ({auth})",
            file=sys.stderr,
            flush=True,
        )
        warming = asyncio.create_task(warm_up())
        await stopping.wait()
    finally:
        if warming is not None and not warming.done():
            warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warming
        await runner.cleanup()
        await env.stop()
        if cgroups is not None:
            cgroups.close()
        if owns_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if failed else 0
