"""The process environment and entry point of a function's runtime, decided without I/O.

Lambda's variables are set as Lambda sets them; the user's variables win except for the reserved
names. The dev-mode rule for paths: a Python function imports from its code folder and layers
first, then from the environment kubelambda runs in (so the user's venv works); executables keep
the user's PATH behind the layers' bin folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from kubelambda.api.function import RESERVED_ENV  # Lambda sets these; users can't override
from kubelambda.api.runtimes import node_major
from kubelambda.runtime.release import LaunchMode
from kubelambda.runtime.spec import EnvironmentSpec

NODE_BOOTSTRAP = Path(__file__).resolve().parent / "nodejs" / "bootstrap.mjs"

# Runtimes whose AWS_EXECUTION_ENV Lambda sets (custom runtimes and images get none).
_MANAGED_PREFIXES = ("python", "nodejs", "java", "dotnet", "ruby")


@dataclass(frozen=True, slots=True)
class Layout:
    """Where one environment's pieces live on this machine (the /var/task, /opt, /tmp analogues)."""

    task_root: Path
    opt_dir: Path
    tmp_dir: Path
    runtime_dir: Path


@dataclass(frozen=True, slots=True)
class Launch:
    """How the shim starts the function: in-process Python (the fast path) or an exec."""

    mode: LaunchMode
    argv: list[str] = field(default_factory=list)
    detail: str = ""


def is_python(runtime: str) -> bool:
    return runtime.startswith("python")


def is_node(runtime: str) -> bool:
    return runtime.startswith("nodejs")


def node_paths(layout: Layout, runtime: str) -> list[str]:
    """Lambda's NODE_PATH: the layers' /opt/nodejs/nodeNN and /opt/nodejs, then the task root."""
    opt = layout.opt_dir / "nodejs"
    major = node_major(runtime)
    paths = [str(opt / f"node{major}" / "node_modules")] if major else []
    return [*paths, str(opt / "node_modules"), str(layout.task_root)]


def application_log_level(spec: EnvironmentSpec) -> str | None:
    """AWS_LAMBDA_LOG_LEVEL: the configured level; with JSON logs and none set, Lambda's INFO."""
    if spec.application_log_level:
        return spec.application_log_level
    return "INFO" if spec.log_format == "JSON" else None


def python_version_dirs(runtime: str, interpreter: tuple[int, int]) -> list[str]:
    """`pythonX.Y` folders to search in layers: the declared runtime's, then the running one's."""
    names = []
    if is_python(runtime) and runtime[len("python") :].replace(".", "").isdigit():
        names.append(runtime)
    running = f"python{interpreter[0]}.{interpreter[1]}"
    if running not in names:
        names.append(running)
    return names


def python_paths(layout: Layout, runtime: str, interpreter: tuple[int, int]) -> list[str]:
    """What goes before the interpreter's own sys.path: task root, then /opt/python's folders."""
    opt_python = layout.opt_dir / "python"
    paths = [str(layout.task_root)]
    paths += [
        str(opt_python / "lib" / name / "site-packages")
        for name in python_version_dirs(runtime, interpreter)
    ]
    paths.append(str(opt_python))
    return paths


def log_stream_name(version: str, now: datetime, token: str) -> str:
    """Lambda's stream naming: 2024/01/31/[$LATEST]0123456789abcdef0123456789abcdef."""
    return f"{now:%Y/%m/%d}/[{version}]{token}"


def _join(*parts: str) -> str:
    seen: list[str] = []
    for part in parts:
        for item in part.split(os.pathsep):
            if item and item not in seen:
                seen.append(item)
    return os.pathsep.join(seen)


def build_environment(
    spec: EnvironmentSpec,
    *,
    layout: Layout,
    runtime_api: str,
    log_stream: str,
    host_env: Mapping[str, str],
    interpreter: tuple[int, int] = (sys.version_info[0], sys.version_info[1]),
    python_bin_dir: str = os.path.dirname(sys.executable),
) -> dict[str, str]:
    """The complete environment of the function's runtime process."""
    env: dict[str, str] = {
        "PATH": _join(
            str(layout.opt_dir / "bin"), python_bin_dir, host_env.get("PATH", os.defpath)
        ),
        "LD_LIBRARY_PATH": _join(
            str(layout.task_root),
            str(layout.task_root / "lib"),
            str(layout.opt_dir / "lib"),
            host_env.get("LD_LIBRARY_PATH", ""),
        ),
        "LANG": host_env.get("LANG", "en_US.UTF-8"),
        "TZ": ":UTC",
        "TMPDIR": str(layout.tmp_dir),
        "AWS_LAMBDA_LOG_FORMAT": spec.log_format,
    }
    if is_python(spec.runtime):
        env["PYTHONPATH"] = os.pathsep.join(python_paths(layout, spec.runtime, interpreter))
    if is_node(spec.runtime):
        env["NODE_PATH"] = os.pathsep.join(node_paths(layout, spec.runtime))
    for name, value in [*spec.environment.items(), *spec.secrets.items()]:
        if name not in RESERVED_ENV:  # the models refuse reserved names; this is a second guard
            env[name] = value
    reserved = {
        "AWS_REGION": spec.region,
        "AWS_DEFAULT_REGION": spec.region,
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": spec.function_version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_INITIALIZATION_TYPE": spec.initialization_type,
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "LAMBDA_TASK_ROOT": str(layout.task_root),
        "LAMBDA_RUNTIME_DIR": str(layout.runtime_dir),
    }
    level = application_log_level(spec)
    if level:  # set by loggingConfig, it wins over a variable of the same name
        reserved["AWS_LAMBDA_LOG_LEVEL"] = level
    if spec.handler:
        reserved["_HANDLER"] = spec.handler
    if spec.package_type == "Zip" and spec.runtime.startswith(_MANAGED_PREFIXES):
        reserved["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{spec.runtime}"
    env.update(reserved)
    return env


def runs_in_process(spec: EnvironmentSpec, env: Mapping[str, str]) -> bool:
    """Whether our Python bootstrap runs inside the warm shim itself (no exec), where it can
    reach the Runtime API over the pipe channel: a Zip function on a managed Python runtime
    with no AWS_LAMBDA_EXEC_WRAPPER (a wrapper is exec'd: the runtime behind it speaks HTTP).
    The one decision for both anatomies: the agent's own child (`choose_launch`) and the Python
    shim of a runtime container (`prepare`)."""
    return (
        spec.package_type == "Zip"
        and is_python(spec.runtime)
        and not env.get("AWS_LAMBDA_EXEC_WRAPPER")
    )


def declared_python(runtime: str, fallback: tuple[int, int]) -> tuple[int, int]:
    """The interpreter version a managed runtime's image has (`python3.12` → (3, 12))."""
    major, _, minor = runtime.removeprefix("python").partition(".")
    if major.isdigit() and minor.isdigit():
        return int(major), int(minor)
    return fallback


def choose_launch(
    spec: EnvironmentSpec,
    layout: Layout,
    env: Mapping[str, str],
    *,
    python: str = sys.executable,
    node: str | None = None,
    is_file: Callable[[str], bool] = os.path.isfile,
) -> Launch:
    """The entry point: an image's command, our Python or Node.js bootstrap (behind
    AWS_LAMBDA_EXEC_WRAPPER when set), or the function's executable `bootstrap`."""
    if spec.package_type == "Image":
        if spec.image_command:
            return Launch("exec", list(spec.image_command))
        return Launch("missing", detail="an Image function run locally needs imageCommand")
    if is_python(spec.runtime):
        if runs_in_process(spec, env):
            return Launch("python")
        wrapped = env.get("AWS_LAMBDA_EXEC_WRAPPER", "")
        return Launch("exec", [wrapped, python, "-P", "-m", "kubelambda.runtime.bootstrap"])
    if is_node(spec.runtime):
        if node is None:
            return Launch(
                "missing",
                detail=f"{spec.runtime} needs Node.js: no `node` on PATH (install Node.js 18+)",
            )
        argv = [node, str(NODE_BOOTSTRAP)]
        wrapper = env.get("AWS_LAMBDA_EXEC_WRAPPER")
        return Launch("exec", [wrapper, *argv]) if wrapper else Launch("node", argv)
    for candidate in (layout.task_root / "bootstrap", layout.opt_dir / "bootstrap"):
        if is_file(str(candidate)):
            return Launch("exec", [str(candidate)])
    return Launch(
        "missing",
        detail=f"Couldn't find valid bootstrap(s): [{layout.task_root / 'bootstrap'} "
        f"{layout.opt_dir / 'bootstrap'}]",
    )
