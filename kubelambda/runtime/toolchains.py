"""Which runtimes this machine can run as local processes, and what to do when it cannot.

Dev mode asks this at load time, so a function it cannot run is refused with the reason and a
fix before any invoke, never with an invoke-time `Runtime.InvalidEntrypoint`. `judge` is the
pure rule; `local_support` probes the machine (the `node` on PATH and its version) once.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache

from kubelambda.api.runtimes import RUNTIMES, family, node_major

MIN_NODE = 18  # the oldest Node.js our bootstrap is written for
NODE_HINT = "install Node.js 18 or later (Debian: apt-get install nodejs) or put `node` on PATH"


@dataclass(frozen=True, slots=True)
class LocalSupport:
    refusal: str | None = None  # why it cannot run here, and what to do; None when it can
    note: str | None = None  # runs, but worth knowing (another local version)


def judge(
    runtime: str | None,
    package_type: str,
    *,
    python: tuple[int, int],
    node: tuple[int, ...] | None,
) -> LocalSupport:
    """Whether a function of this runtime and package type runs as a local process."""
    if package_type == "Image":
        return LocalSupport(
            "packageType Image needs cluster mode (there is no container engine here); "
            "serve it with the Helm chart, or use packageType Zip with code.path for dev mode"
        )
    if runtime is None or runtime not in RUNTIMES:
        return LocalSupport(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    kind = family(runtime)
    if kind == "python":
        local = f"python{python[0]}.{python[1]}"
        if runtime == local:
            return LocalSupport()
        return LocalSupport(note=f"{runtime} functions run on the local {local} interpreter")
    if kind == "nodejs":
        if node is None:
            return LocalSupport(f"{runtime} needs Node.js and no `node` is on PATH: {NODE_HINT}")
        shown = "v" + ".".join(str(part) for part in node)
        if node[0] < MIN_NODE:
            return LocalSupport(f"{runtime} needs Node.js {MIN_NODE} or later; found {shown}")
        same = node[0] == node_major(runtime)
        note = None if same else f"{runtime} functions run on the local Node.js {shown}"
        return LocalSupport(note=note)
    return LocalSupport()  # provided.*: the function brings its own `bootstrap`


def find_node() -> str | None:
    """The `node` (or Debian's `nodejs`) on PATH."""
    return shutil.which("node") or shutil.which("nodejs")


@cache
def node_version(binary: str) -> tuple[int, ...] | None:
    """`node --version` as numbers, e.g. (20, 11, 1); None if it will not run."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        return tuple(int(part) for part in out.strip().lstrip("v").split("."))
    except ValueError:
        return None


def local_support(runtime: str | None, package_type: str = "Zip") -> LocalSupport:
    node: tuple[int, ...] | None = None
    if runtime is not None and family(runtime) == "nodejs":
        binary = find_node()
        node = node_version(binary) if binary else None
    return judge(runtime, package_type, python=sys.version_info[:2], node=node)
