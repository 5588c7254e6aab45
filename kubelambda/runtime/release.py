"""The release message: what the agent sends a warm shim when it hands it a function.

One JSON line (`process.RuntimeProcess.release`). In a runtime container it becomes
`release-N.env` (the `sh` shim reads only `env`) and `release-N.json` (`env`, the address-space cap,
`mode`, `channel`, `sys_path`: the Python shim runs our bootstrap when `mode` is `python`;
`handshake.release_files`). Standard library only, so the shim can name it cheaply.
"""

from __future__ import annotations

from typing import Literal, Required, TypedDict

# python: import the handler in the shim itself; node: exec `argv`, the machine's node on our
# Node.js bootstrap (`nodejs/bootstrap.mjs`); exec: exec `argv` (a bootstrap executable, an
# image's command, a wrapper); missing: no entry point (an init error, Runtime.InvalidEntrypoint).
LaunchMode = Literal["python", "node", "exec", "missing"]
# How our Python bootstrap reaches the Runtime API: frames on the release socketpair (the fast
# path, `channel.py`) or HTTP at AWS_LAMBDA_RUNTIME_API, as every other runtime does.
Channel = Literal["pipe", "http"]


class Release(TypedDict, total=False):
    env: Required[dict[str, str]]  # the function's whole environment
    cwd: Required[str]  # where it starts: LAMBDA_TASK_ROOT
    mode: Required[LaunchMode]
    argv: list[str]  # node, exec: the entry point and its arguments
    sys_path: list[str]  # python: prepended to sys.path (task root, layers, PYTHONPATH)
    fsize: int  # the largest file it may write (ephemeral storage), bytes
    memory_mb: int  # the function's memorySize: the runtime's cap (a cgroup, else the next)
    address_space: int  # set where no cgroup caps memory: the shim's RLIMIT_AS, bytes
    detail: str  # missing: why there is no entry point
    channel: Channel  # python: the Runtime API's carrier (default http)
