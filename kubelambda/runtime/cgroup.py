"""A cgroup v2 per execution environment, where this machine lets the agent make one.

The agent makes `kubelambda-<pid>` under its own cgroup (a cgroup v2 mount it can write) and one
child per runtime process. The shim moves itself in before it starts anything, so every process
the function starts — a double-forked `setsid` daemon too — is in it, and `kill()` (cgroup.kill)
ends them all at once: a process group is not enough, since setsid leaves it. Where the memory
controller can be enabled, `memory.max` caps the environment at its function's memorySize and
`memory.events` tells an out-of-memory kill apart; where it cannot, the shim caps the address
space instead (RLIMIT_AS, `release.memory`). With no writable cgroup v2 at all, the process
group and the shim's guardian remain the only containment (docs/compatibility.md).
A dead agent's leftovers (`kubelambda-<pid>` of a pid that is gone) are swept by the next one.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from pathlib import Path

_PREFIX = "kubelambda-"
_ids = itertools.count(1)


def cgroup2_mount(mountinfo: str) -> Path | None:
    """The mount point of the cgroup v2 hierarchy, from /proc/self/mountinfo's text."""
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            return Path(left.split(" ")[4])
    return None


def own_cgroup(proc_cgroup: str) -> str | None:
    """This process's cgroup v2 path (the `0::` line of /proc/self/cgroup)."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


def _write(path: Path, text: str) -> bool:
    try:
        path.write_text(text)
    except OSError:
        return False
    return True


class CgroupTree:
    """This agent's cgroup, under which each environment gets its own."""

    def __init__(self, root: Path, memory: bool) -> None:
        self.root = root
        self.memory = memory  # memory.max can be set on the environments' cgroups

    @classmethod
    def create(cls) -> CgroupTree | None:
        """This agent's cgroup, or None where cgroup v2 is absent or not writable."""
        try:
            mount = cgroup2_mount(Path("/proc/self/mountinfo").read_text())
            own = own_cgroup(Path("/proc/self/cgroup").read_text())
        except OSError:
            return None
        if mount is None or own is None:
            return None
        parent = mount / own.lstrip("/")
        _sweep(parent)
        root = parent / f"{_PREFIX}{os.getpid()}"
        try:
            root.mkdir(exist_ok=True)
        except OSError:
            return None
        if not (root / "cgroup.kill").exists():  # Linux < 5.14: no reliable kill; don't pretend
            _remove(root)
            return None
        # The memory controller must be enabled in the parent and here for children to have it.
        # The parent may refuse (processes of its own, a delegation boundary): then no cap here.
        _write(parent / "cgroup.subtree_control", "+memory")
        memory = _write(root / "cgroup.subtree_control", "+memory")
        return cls(root, memory)

    def environment(self) -> EnvCgroup | None:
        path = self.root / f"env-{next(_ids)}"
        try:
            path.mkdir()
        except OSError:
            return None
        return EnvCgroup(path, self.memory and (path / "memory.max").exists())

    def close(self) -> None:
        for child in self.root.glob("env-*"):
            EnvCgroup(child, False).remove()
        _remove(self.root)


class EnvCgroup:
    """One environment's cgroup: the runtime process and everything it starts."""

    def __init__(self, path: Path, memory: bool) -> None:
        self.path = path
        self.memory = memory

    @property
    def procs_file(self) -> str:
        """What the shim writes its pid to, to move itself in."""
        return str(self.path / "cgroup.procs")

    def limit_memory(self, megabytes: int) -> bool:
        """Cap the environment's memory (no swap); False where the controller is unavailable."""
        if not self.memory:
            return False
        _write(self.path / "memory.swap.max", "0")
        return _write(self.path / "memory.max", str(megabytes * 1024 * 1024))

    def oom_kills(self) -> int:
        """How many processes the kernel killed here for going over memory.max."""
        try:
            text = (self.path / "memory.events").read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def kill(self) -> None:
        """SIGKILL every process in the environment, wherever it moved in the process tree."""
        if not _write(self.path / "cgroup.kill", "1"):
            for pid in self.pids():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self, timeout: float = 0.5) -> None:
        """Kill what is left and remove the cgroup (the kernel frees it once it is empty)."""
        self.kill()
        _remove(self.path, timeout)


def _remove(path: Path, timeout: float = 0.5) -> None:
    # rmdir succeeds only once the killed processes are gone, a few milliseconds after the kill.
    deadline = time.monotonic() + timeout
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)


def _sweep(parent: Path) -> None:
    """Remove the cgroups of agents that died without cleaning up (kill -9)."""
    for stale in parent.glob(f"{_PREFIX}*"):
        pid = stale.name[len(_PREFIX) :]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        for child in stale.glob("env-*"):
            EnvCgroup(child, False).remove(0.2)
        _remove(stale, 0.2)
