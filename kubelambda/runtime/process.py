"""One runtime process: the shim started as a child, its log pipe, its exit and its release.

The process leads its own process group (so a runtime's own children are signalled with it) and,
where the machine allows, its own cgroup (`cgroup.py`), which also holds what escapes the group
with setsid and caps memory at the function's memorySize (else the shim sets RLIMIT_AS, except
for Node.js). It is SIGKILLed by the kernel if the agent dies (the shim sets PR_SET_PDEATHSIG)
and is watched through a pidfd, so an exit is seen at once without a thread or a polling loop.
Its output is read in bounded slices and cut into lines of at most `MAX_LINE` bytes (Lambda cuts
long log events too), so a runtime that writes megabytes without a newline costs linear time
and bounded memory, and cannot hold the event loop from other environments.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from kubelambda.runtime.cgroup import CgroupTree, EnvCgroup
from kubelambda.runtime.limits import address_space
from kubelambda.runtime.release import Release

OutputSink = Callable[[str], None]
MAX_LINE = 256 * 1024  # longest log line; longer output is cut (CloudWatch's event limit)
READS_PER_TURN = 16  # 64 KiB reads per event-loop turn before other work gets its turn


def parse_vm_hwm(status: bytes) -> int:
    """VmHWM (peak resident set size, kB) from the text of /proc/PID/status; 0 if absent."""
    start = status.find(b"VmHWM:")
    if start < 0:
        return 0
    return int(status[start + 6 : status.find(b"kB", start)])


def shim_environment(host_env: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """The shim's environment before release: just enough to start Python and import us."""
    env = {"PATH": host_env.get("PATH", os.defpath), "LANG": host_env.get("LANG", "C.UTF-8")}
    if host_env.get("PYTHONPATH"):  # the agent found kubelambda through it; so must the shim
        env["PYTHONPATH"] = host_env["PYTHONPATH"]
    return env


class RuntimeHandle(Protocol):
    """What an Environment needs of one runtime run: this module's child process, or a run in
    the runtime container (`container.ContainerRuntime`)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exited(self) -> asyncio.Future[int]: ...

    @property
    def alive(self) -> bool: ...

    expected_exit: bool

    def max_rss_kb(self) -> int: ...
    def oom_killed(self) -> bool: ...
    async def wait_warm(self) -> bool: ...
    async def release(self, message: Release) -> socket.socket | None: ...
    def flush_partial(self) -> None: ...
    def kill(self) -> None: ...
    async def terminate(self, grace: float) -> None: ...
    def close(self) -> None: ...


class RuntimeProcess:
    """A shim process, from spawn to reaping."""

    def __init__(
        self,
        *,
        cwd: Path,
        on_output: OutputSink,
        python: str = sys.executable,
        cgroups: CgroupTree | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_output = on_output
        self._cgroup: EnvCgroup | None = cgroups.environment() if cgroups else None
        self._ooms = 0
        self._oom: bool | None = None
        control, child_control = socket.socketpair()
        lifeline_r, self._lifeline = os.pipe()
        self._out, out_w = os.pipe()
        try:
            self._popen = subprocess.Popen(
                [
                    python,
                    "-P",
                    "-m",
                    "kubelambda.runtime.shim",
                    str(os.getpid()),
                    str(child_control.fileno()),
                    self._cgroup.path.as_posix() if self._cgroup else "",
                ],
                stdin=lifeline_r,
                stdout=out_w,
                stderr=out_w,
                pass_fds=(child_control.fileno(),),
                cwd=cwd,
                env=shim_environment(os.environ),
                start_new_session=True,
            )
        except BaseException:
            for fd in (self._lifeline, self._out):
                os.close(fd)
            control.close()
            if self._cgroup is not None:
                self._cgroup.remove()
            raise
        finally:
            os.close(lifeline_r)
            os.close(out_w)
            child_control.close()
        self.pid = self._popen.pid
        self._control: socket.socket | None = control
        control.setblocking(False)
        os.set_blocking(self._out, False)
        self._partial = bytearray()
        self._loop.add_reader(self._out, self.drain_output)
        self.exited: asyncio.Future[int] = self._loop.create_future()
        self._pidfd = os.pidfd_open(self.pid)
        # Kept open: a pread per invoke costs half of an open/read/close (the warm hot path).
        self._status_fd = os.open(f"/proc/{self.pid}/status", os.O_RDONLY)
        self._loop.add_reader(self._pidfd, self._on_exited)
        self.expected_exit = False  # set when the agent itself ends the process
        self._warm_seen = False  # the shim's b"W" was read off the control channel

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    @property
    def returncode(self) -> int | None:
        return self.exited.result() if self.exited.done() else None

    def max_rss_kb(self) -> int:
        """The runtime's peak resident set size (VmHWM) in kB; 0 once it is gone."""
        if self._status_fd < 0:
            return 0
        try:
            return parse_vm_hwm(os.pread(self._status_fd, 4096, 0))
        except OSError:
            return 0

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this runtime for its memory cap (cgroup)."""
        if self._oom is not None:  # known since the cgroup was removed
            return self._oom
        return self._cgroup is not None and self._cgroup.oom_kills() > self._ooms

    async def wait_warm(self) -> bool:
        """True once the shim reports it is warm; False if it exited first."""
        assert self._control is not None
        try:
            self._warm_seen = await self._loop.sock_recv(self._control, 1) == b"W"
        except OSError:
            return False
        return self._warm_seen

    async def release(self, message: Release) -> socket.socket | None:
        """Hand the shim its function: one JSON line. The control channel then closes, or, with
        `channel: pipe`, is returned to carry the Runtime API (`channel.py`)."""
        control, self._control = self._control, None
        assert control is not None, "a runtime process is released once"
        memory = message.get("memory_mb")
        if memory:
            cgroup = self._cgroup
            if cgroup is not None and cgroup.limit_memory(memory):
                self._ooms = cgroup.oom_kills()
            elif message.get("mode") != "node":
                # No memory controller here: the shim caps the address space instead. Not for
                # Node.js: V8 reserves far more address space than it uses (its code range
                # alone), so any cap near memorySize kills node before it starts (SIGTRAP).
                message = {**message, "address_space": address_space(memory)}
        keep = message.get("channel") == "pipe" and message["mode"] == "python"
        try:
            await self._loop.sock_sendall(control, json.dumps(message).encode() + b"\n")
            if keep and not self._warm_seen:  # a re-init released it before its b"W"
                keep = await self._loop.sock_recv(control, 1) == b"W"
        except OSError:
            keep = False  # it died meanwhile; its exit is reported through `exited`
        except BaseException:
            control.close()  # cancelled (the environment stopped during a re-init)
            raise
        if not keep:
            control.close()
            return None
        return control

    def drain_output(self) -> bool:
        """Read what the runtime wrote (a bounded amount per call) and hand it on by lines;
        True if more may be waiting in the pipe."""
        for _ in range(READS_PER_TURN):
            try:
                chunk = os.read(self._out, 1 << 16)
            except BlockingIOError:
                return False
            except OSError:
                chunk = b""
            if not chunk:
                self._close_output()
                if self._partial:
                    self._emit_partial()
                return False
            self._take(chunk)
        return True

    def _take(self, chunk: bytes) -> None:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._partial += chunk[start:end]
            self._emit_partial()
            start = end + 1
        self._partial += chunk[start:]
        while len(self._partial) >= MAX_LINE:  # a line without an end: cut it, keep going
            piece = bytes(self._partial[:MAX_LINE])
            del self._partial[:MAX_LINE]
            self._on_output(piece.decode(errors="replace"))

    def _emit_partial(self) -> None:
        line = bytes(self._partial)
        self._partial.clear()
        self._on_output(line.decode(errors="replace"))

    def flush_partial(self) -> None:
        """Emit a last line that has no newline yet (a handler's print(..., end=''))."""
        # What is left in the pipe is at most its capacity: the handler waited on the rest.
        while self._out >= 0 and self.drain_output():
            pass
        if self._partial:
            self._emit_partial()

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def kill(self) -> None:
        self.expected_exit = True
        self.signal_group(signal.SIGKILL)
        if self._cgroup is not None:
            self._cgroup.kill()  # what left the group with setsid too

    async def terminate(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; returns once the process is reaped."""
        self.expected_exit = True
        if self.alive:
            self.signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self.exited), grace)
            except TimeoutError:
                self.signal_group(signal.SIGKILL)
                await asyncio.wait_for(asyncio.shield(self.exited), 5.0)
        self.close()

    def close(self) -> None:
        """Release the agent's ends; closing the lifeline makes the guardian sweep the group."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._lifeline >= 0:
            os.close(self._lifeline)
            self._lifeline = -1
        if self._status_fd >= 0:
            os.close(self._status_fd)
            self._status_fd = -1
        self._close_output()
        if self._cgroup is not None and not self.alive:
            self._oom = self.oom_killed()
            self._cgroup.remove()
            self._cgroup = None

    def _close_output(self) -> None:
        if self._out >= 0:
            self._loop.remove_reader(self._out)
            os.close(self._out)
            self._out = -1

    def _on_exited(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        returncode = self._popen.wait()
        # Whatever the runtime started dies with it (the guardian too, and setsid escapees).
        self.signal_group(signal.SIGKILL)
        if self._cgroup is not None:
            self._cgroup.kill()
        if self._out >= 0:
            self.flush_partial()
        if not self.exited.done():
            self.exited.set_result(returncode)
