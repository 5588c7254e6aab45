"""Turn an EnvironmentSpec into the shim's release message: code, layers, /tmp, env, entry point."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kubelambda.runtime.code import CodeCache
from kubelambda.runtime.envvars import (
    Launch,
    Layout,
    build_environment,
    choose_launch,
    is_python,
    log_stream_name,
    python_paths,
)
from kubelambda.runtime.spec import EnvironmentSpec

RUNTIME_DIR = Path(__file__).resolve().parent  # LAMBDA_RUNTIME_DIR: where the bootstrap lives
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Prepared:
    launch: Launch
    message: dict[str, object]
    layout: Layout


async def prepare(
    spec: EnvironmentSpec,
    *,
    cache: CodeCache,
    work_dir: Path,
    runtime_api: str,
    python: str = sys.executable,
) -> Prepared:
    """Fetch code and layers, make this environment's /opt and /tmp, and decide the release."""
    task_root = await cache.resolve(spec.code)
    opt_dir = work_dir / "opt"
    if opt_dir.exists():
        shutil.rmtree(opt_dir)
    if spec.layers:
        await cache.install_layers(spec.layers, opt_dir)
    tmp_dir = work_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    layout = Layout(task_root=task_root, opt_dir=opt_dir, tmp_dir=tmp_dir, runtime_dir=RUNTIME_DIR)
    stream = log_stream_name(spec.function_version, datetime.now(UTC), secrets.token_hex(16))
    env = build_environment(
        spec,
        layout=layout,
        runtime_api=runtime_api,
        log_stream=stream,
        host_env=os.environ,
        python_bin_dir=os.path.dirname(python),
    )
    launch = choose_launch(spec, layout, env, python=python)
    sys_path: list[str] = []
    if is_python(spec.runtime):
        sys_path = python_paths(
            layout, spec.runtime, (sys.version_info.major, sys.version_info.minor)
        )
        # A user's own PYTHONPATH (Lambda lets it be overridden) follows the task root and /opt.
        sys_path += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    message: dict[str, object] = {
        "env": env,
        "cwd": str(task_root),
        "mode": launch.mode,
        "argv": launch.argv,
        "sys_path": list(dict.fromkeys(sys_path)),
        "fsize": spec.ephemeral_storage * MIB,
        "detail": launch.detail,
    }
    return Prepared(launch=launch, message=message, layout=layout)
