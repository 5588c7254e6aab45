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
    declared_python,
    is_python,
    log_stream_name,
    python_paths,
    runs_in_process,
)
from kubelambda.runtime.release import Channel, Release
from kubelambda.runtime.spec import EnvironmentSpec
from kubelambda.runtime.toolchains import find_node

RUNTIME_DIR = Path(__file__).resolve().parent  # LAMBDA_RUNTIME_DIR: where the bootstrap lives
MIB = 1024 * 1024
# In a runtime container these belong to the image (its PATH, its runtime folder, ...).
IMAGE_OWNED = ("PATH", "LD_LIBRARY_PATH", "LANG", "TMPDIR", "LAMBDA_RUNTIME_DIR", "PYTHONPATH")


@dataclass(frozen=True, slots=True)
class SharedDirs:
    """Cluster mode's emptyDirs shared with the runtime container, as the agent mounts them."""

    handshake: Path  # the FIFOs, the release files, our bootstrap (container.py)
    task_root: Path  # mounted at the same path in both containers (/var/task)
    layers_dir: Path  # the runtime container's /opt


def _clear(folder: Path) -> None:
    """Empty a folder in place (a mount point cannot itself be removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


@dataclass(frozen=True, slots=True)
class Prepared:
    launch: Launch
    message: Release
    layout: Layout


async def prepare(
    spec: EnvironmentSpec,
    *,
    cache: CodeCache,
    work_dir: Path,
    runtime_api: str,
    python: str = sys.executable,
    shared: SharedDirs | None = None,
    channel: Channel = "http",
) -> Prepared:
    """Fetch code and layers, make this environment's /opt and /tmp, and decide the release.

    `channel` is how our Python bootstrap, when it is the entry point, reaches the Runtime API."""
    if shared is not None:
        return await _prepare_shared(
            spec, cache=cache, runtime_api=runtime_api, shared=shared, channel=channel
        )
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
    node = find_node() if spec.runtime.startswith("nodejs") else None
    launch = choose_launch(spec, layout, env, python=python, node=node)
    sys_path: list[str] = []
    if is_python(spec.runtime):
        sys_path = python_paths(
            layout, spec.runtime, (sys.version_info.major, sys.version_info.minor)
        )
        # A user's own PYTHONPATH (Lambda lets it be overridden) follows the task root and /opt.
        sys_path += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    message: Release = {
        "env": env,
        "cwd": str(task_root),
        "mode": launch.mode,
        "argv": launch.argv,
        "sys_path": list(dict.fromkeys(sys_path)),
        "fsize": spec.ephemeral_storage * MIB,
        "memory_mb": spec.memory_size,
        "detail": launch.detail,
    }
    if launch.mode == "python":
        message["channel"] = channel
    return Prepared(launch=launch, message=message, layout=layout)


async def _prepare_shared(
    spec: EnvironmentSpec,
    *,
    cache: CodeCache,
    runtime_api: str,
    shared: SharedDirs,
    channel: Channel,
) -> Prepared:
    """The same for a runtime container: code and layers copied into the shared folders, and
    only the function's variables (the image keeps its own PATH and the like). Where dev mode
    would run our Python bootstrap in-process, the release says so (`mode: python`, with the
    channel and sys.path): the Python shim then runs it (`pyshim.py`); anything else, and the
    `sh` shim always, runs the image's entry point."""
    _clear(shared.task_root)
    if spec.package_type == "Zip" and spec.code.inline is not None:
        cache.write_inline(spec.code, shared.task_root)  # one write, on the cold start's path
    elif spec.package_type == "Zip":  # an image carries its code
        shutil.copytree(await cache.resolve(spec.code), shared.task_root, dirs_exist_ok=True)
    _clear(shared.layers_dir)
    if spec.layers:
        await cache.install_layers(spec.layers, shared.layers_dir)
    layout = Layout(
        task_root=shared.task_root,
        opt_dir=Path("/opt"),
        tmp_dir=Path("/tmp"),
        runtime_dir=Path("/var/runtime"),
    )
    stream = log_stream_name(spec.function_version, datetime.now(UTC), secrets.token_hex(16))
    env = build_environment(
        spec, layout=layout, runtime_api=runtime_api, log_stream=stream, host_env={}
    )
    owned = IMAGE_OWNED + (("LAMBDA_TASK_ROOT",) if spec.package_type == "Image" else ())
    for name in owned:
        if name not in spec.environment:
            env.pop(name, None)
    message: Release = {
        "env": env,
        "cwd": str(shared.task_root),
        "mode": "exec",  # the entry point is the runtime container's, not ours
        "memory_mb": spec.memory_size,
    }
    if runs_in_process(spec, env):
        # The image's interpreter is the runtime's own version, not the agent's.
        running = (sys.version_info.major, sys.version_info.minor)
        interpreter = declared_python(spec.runtime, running)
        sys_path = python_paths(layout, spec.runtime, interpreter)
        sys_path += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        message["mode"], message["channel"] = "python", channel
        message["sys_path"] = list(dict.fromkeys(sys_path))
    return Prepared(launch=Launch(message["mode"]), message=message, layout=layout)
