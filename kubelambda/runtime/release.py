"""The release message: what the agent sends a warm shim when it hands it a function.

One JSON line (`process.RuntimeProcess.release`); a runtime container's shim reads only `env`,
as `release.env` (`container.py`). Standard library only, so the shim can name it cheaply.
"""

from __future__ import annotations

from typing import Literal, Required, TypedDict

# python: import the handler in the shim itself; exec: exec `argv`; missing: no entry point
# (reported as an init error, Runtime.InvalidEntrypoint).
LaunchMode = Literal["python", "exec", "missing"]


class Release(TypedDict, total=False):
    env: Required[dict[str, str]]  # the function's whole environment
    cwd: Required[str]  # where it starts: LAMBDA_TASK_ROOT
    mode: Required[LaunchMode]
    argv: list[str]  # exec: the entry point and its arguments
    sys_path: list[str]  # python: prepended to sys.path (task root, layers, PYTHONPATH)
    fsize: int  # the largest file it may write (ephemeral storage), bytes
    memory_mb: int  # the function's memorySize: the runtime's cap (a cgroup, else the next)
    address_space: int  # set where no cgroup caps memory: the shim's RLIMIT_AS, bytes
    detail: str  # missing: why there is no entry point
