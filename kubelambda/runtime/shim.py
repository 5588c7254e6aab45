"""The warm shim: a generic runtime process that waits, code-less, until the agent releases it.

Started by the agent as `python -P -m kubelambda.runtime.shim PARENT_PID CONTROL_FD [CGROUP]`,
with stdin as a lifeline pipe whose write end only the agent holds. It

0. moves itself into the environment's cgroup, when the agent made one (`cgroup.py`), before
   anything else runs, so that everything the function starts is in it;
1. asks the kernel to SIGKILL it when the agent dies (PR_SET_PDEATHSIG);
2. forks a tiny guardian that blocks on the lifeline and, at EOF (the agent is gone, however it
   died), kills the whole cgroup (or else the process group), so a runtime's own children —
   even one that left the group with setsid — cannot leak either;
3. imports the Python bootstrap ahead of time, tells the agent it is warm (b"W" on CONTROL_FD)
   and waits for one JSON release line: the function's environment, working folder, sys.path
   and entry point;
4. then, for Python, imports the handler and serves in this very process (no exec: the fast
   path), speaking the Runtime API as frames on CONTROL_FD when the release says
   `channel: pipe` (`channel.py`); or execs the real entry point (awslambdaric, a custom
   runtime's `bootstrap`, an image command), which uses HTTP.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubelambda.runtime.release import Release

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    import ctypes  # startup only, before the process is warm

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the agent died before prctl took effect
        os._exit(1)


def _join_cgroup(cgroup: str) -> None:
    if cgroup:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as procs:
            procs.write("0")  # "0": the writing process itself


def _fork_guardian(control_fd: int, cgroup: str) -> None:
    if os.fork() != 0:
        return
    # The guardian: holds nothing but the lifeline (fd 0) and waits for the agent to go away.
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(control_fd)
        while os.read(0, 4096):
            pass
        if cgroup:
            with contextlib.suppress(OSError), open(os.path.join(cgroup, "cgroup.kill"), "w") as f:
                f.write("1")
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(0)


def _read_release(control_fd: int) -> Release:
    import json

    # A re-init releases without waiting for the ack and may have closed its end already.
    with contextlib.suppress(OSError):
        os.write(control_fd, b"W")
    chunks = []
    while True:
        chunk = os.read(control_fd, 1 << 16)
        if not chunk:  # the agent closed the control channel without releasing us
            os._exit(0)
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    release: Release = json.loads(b"".join(chunks))
    return release


def _apply(release: Release) -> dict[str, str]:
    import time

    env = dict(release["env"])
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    os.chdir(release["cwd"])
    limit = release.get("fsize")
    if isinstance(limit, int) and limit > 0:
        import resource

        # /tmp's size cannot be capped without privileges; a single file's size can.
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    space = release.get("address_space")
    if isinstance(space, int) and space > 0:
        import resource

        # No cgroup caps this environment: an allocation past memorySize fails instead.
        resource.setrlimit(resource.RLIMIT_AS, (space, space))
    return env


def _exec(argv: list[str], env: dict[str, str]) -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # Python ignores it; a shell must not
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        from kubelambda.runtime.bootstrap import report_init_error

        report_init_error(
            "Runtime.InvalidEntrypoint",
            f"fork/exec {argv[0]}: {(exc.strerror or str(exc)).lower()}",
        )
        os._exit(127)


def main() -> None:
    parent, control_fd = int(sys.argv[1]), int(sys.argv[2])
    cgroup = sys.argv[3] if len(sys.argv) > 3 else ""
    _join_cgroup(cgroup)
    _die_with_parent(parent)
    _fork_guardian(control_fd, cgroup)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # the runtime must not hold the lifeline's reading end as stdin
    os.close(devnull)
    # Pre-import what init and the invoke loop need, so that release pays for the handler only.
    import logging  # noqa: F401
    import traceback  # noqa: F401

    from kubelambda.runtime import bootstrap

    release = _read_release(control_fd)
    env = _apply(release)
    argv = release.get("argv")
    if release["mode"] in ("exec", "node") and argv:
        os.close(control_fd)
        _exec(argv, env)
        return
    extra = release.get("sys_path", [])
    sys.path[:0] = [p for p in extra if p not in sys.path]
    sys.argv = [bootstrap.__file__]
    if release.get("channel") == "pipe":
        # The socketpair stays open as the Runtime API's carrier; the handler's own children
        # must not inherit it (pass_fds made it inheritable).
        os.set_inheritable(control_fd, False)
        bootstrap.main(channel_fd=control_fd)
    else:
        os.close(control_fd)
        bootstrap.main()


if __name__ == "__main__":
    main()
