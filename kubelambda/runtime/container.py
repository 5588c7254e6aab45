"""The runtime in its own container: the agent's side of the shim handshake (operator/README.md).

In a two-container pod the function's runtime runs in the runtime container (an official Lambda
base image, or the function's own image), not as the agent's child. Its command is `SHIM`, a
POSIX `sh` loop (so it needs nothing but /bin/sh and mkfifo from the image) that talks to the
agent through three FIFOs in a shared emptyDir (`HANDSHAKE_DIR`):

    events   shim → agent, one line each: `warm PID` (the shell is up), `run PID` (a runtime
             started), `exit STATUS` (it ended; `wait`'s status, 128+N for signal N)
    release  agent → shim: one line per runtime to start, `go N`; `release-N.env` (and the
             same as `release-N.json`, which the Python shim reads) is written first
    output   the runtime's stdout and stderr, read by the agent for logs and the log tail

and, for the warm Python shim (`pyshim.py`), our Python bootstrap and the pipe channel:

    python/       our bootstrap's modules (stdlib only), written by the agent before it opens
                  the FIFOs (the official image has no kubelambda); the shim imports them warm
    runtime.sock  the agent listens here. The Python shim's child, forked ahead, connects
                  before it waits: the agent then sends its release on that connection (one
                  frame, `handshake.release_frame`; no files, no release line), and our
                  bootstrap speaks the Runtime API on it as frames (`channel.py`), as dev mode's
                  shim does over its socketpair. A child that got no connection (an older
                  agent, or a release before the agent accepted it) reads the release line and
                  files and connects after it. The agent takes only a connection from a child
                  of the shim not yet running, or from the runtime it released (the peer's PID,
                  SO_PEERCRED, and its parent in /proc), so no one else gets a release or the
                  Runtime API (`childsockets.py`)

The agent opens every FIFO read-write, so no open ever blocks on its side and nothing is lost
while the shell is between runtimes. The runtime's exit is reported by the shell (a runtime is
not the agent's child, so the agent cannot wait for it); the shell itself is watched through a
pidfd (a shared PID namespace makes its PID visible), so a dead runtime container fails whatever
was waiting. A timeout or a crash restarts only the runtime, in the same shell: the next release
line is the re-init.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections import deque
from collections.abc import Callable
from pathlib import Path

from kubelambda.runtime.childsockets import ChildSockets
from kubelambda.runtime.handshake import (
    BOOTSTRAP_DIR,
    FIFOS,
    bootstrap_files,
    numbered,
    release_files,
    returncode_of,
)
from kubelambda.runtime.process import parse_vm_hwm
from kubelambda.runtime.release import Release

OutputSink = Callable[[str], None]
# Told of a released runtime's pipe-channel connection (the Environment serves it).
ChannelSink = Callable[["ContainerRuntime", socket.socket], None]


class ContainerRuntime:
    """One runtime run in the runtime container, from release to exit (a RuntimeHandle)."""

    def __init__(self, link: ContainerLink) -> None:
        self._link = link
        self.pid: int | None = None
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.expected_exit = False
        self.wants_channel = False  # released to run our bootstrap on the pipe channel
        self._status_fd = -1  # /proc/PID/status, open from its start to its end
        self.exited.add_done_callback(lambda _: self.close())

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    def oom_killed(self) -> bool:
        """The runtime container's cap is its address space (`ulimit -v`): a failed allocation,
        reported by the runtime itself, not a kill the agent could see."""
        return False

    def max_rss_kb(self) -> int:
        # A pread on the file kept open: an open/read/close per invoke was ~10 % of the
        # agent's CPU on the warm path (py-spy, bench/README.md).
        if self._status_fd < 0 or not self.alive:
            return 0
        try:
            return parse_vm_hwm(os.pread(self._status_fd, 4096, 0))
        except OSError:
            return 0

    async def wait_warm(self) -> bool:
        return await self._link.wait_warm()

    async def release(self, message: Release) -> None:
        await self._link.release(self, message)

    def flush_partial(self) -> None:
        self._link.flush_output()

    def kill(self) -> None:
        self.expected_exit = True
        if self.pid is not None and self.alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)

    async def terminate(self, grace: float) -> None:
        self.expected_exit = True
        if self.pid is not None and self.alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self.exited), grace)
            except TimeoutError:
                self.kill()
        self.finish(-15)

    def close(self) -> None:
        """Its status file; the FIFOs belong to the link."""
        if self._status_fd >= 0:
            os.close(self._status_fd)
            self._status_fd = -1

    def started(self, pid: int) -> None:
        self.pid = pid
        if self.expected_exit:  # ended before it even started (a stop or a re-init)
            self.kill()
            return
        if self.exited.done():
            return
        with contextlib.suppress(OSError):
            self._status_fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)

    def finish(self, returncode: int) -> None:
        if not self.exited.done():
            self.exited.set_result(returncode)


class ContainerLink:
    """The agent's end of the handshake with the shim in the runtime container."""

    def __init__(
        self,
        directory: Path,
        *,
        on_output: OutputSink,
        on_channel: ChannelSink | None = None,
    ) -> None:
        self.directory = directory
        self._on_output = on_output
        self._loop = asyncio.get_running_loop()
        self._fds: dict[str, int] = {}
        self._partial = {"events": b"", "output": b""}
        self._warm: asyncio.Future[bool] = self._loop.create_future()
        self._pidfd = -1
        self._waiting: deque[ContainerRuntime] = deque()  # released, not started yet
        self._generation = 0  # releases so far: the number in the release files' names
        self._running: ContainerRuntime | None = None
        self._dead = False
        # runtime.sock, where the Python shim's children connect (`childsockets.py`).
        self.sockets: ChildSockets[ContainerRuntime] | None = None
        if on_channel is not None:
            self.sockets = ChildSockets(
                directory,
                on_channel,
                running=lambda: self._running,
                read_events=lambda: self._read("events"),
            )

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in FIFOS:  # at once: a shim writing to a missing one would make a plain file
            with contextlib.suppress(FileExistsError):
                os.mkfifo(self.directory / name, 0o600)
        # Before the FIFOs are opened: the Python shim, blocked opening `events` until the
        # agent has its end open, imports our bootstrap right after (pyshim.py).
        self._ship_bootstrap()
        if self.sockets is not None:
            self.sockets.listen()
        for name in FIFOS:
            # Read-write: never blocks, and the pipe outlives each shell-side open.
            self._fds[name] = os.open(self.directory / name, os.O_RDWR | os.O_NONBLOCK)
        self._loop.add_reader(self._fds["events"], self._read, "events")
        self._loop.add_reader(self._fds["output"], self._read, "output")

    def _ship_bootstrap(self) -> None:
        root = self.directory / BOOTSTRAP_DIR
        for relative, source in bootstrap_files().items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            staged = path.with_name(path.name + ".new")
            staged.write_text(source)
            staged.replace(path)  # whole, never half-written

    def spawn(self) -> ContainerRuntime:
        return ContainerRuntime(self)

    async def wait_warm(self) -> bool:
        return await asyncio.shield(self._warm)

    async def release(self, runtime: ContainerRuntime, message: Release) -> None:
        """On the connection of the shim's child waiting for it, if there is one, else by the
        release files and line."""
        runtime.wants_channel = message["mode"] == "python" and message.get("channel") == "pipe"
        if self._dead:
            runtime.finish(-signal.SIGKILL)
            return
        if self.sockets is not None and await self.sockets.send_release(
            message, dead=lambda: self._dead
        ):
            self._waiting.append(runtime)
            return
        if self._dead:
            runtime.finish(-signal.SIGKILL)
            return
        # Each release's files are new files (`release-N.json`, `release-N.env`), named on its
        # line (`go N`): the shim reads them only after that line, so they need no atomic
        # rename, and on ext4 a rename over a file (or a truncate) forces its blocks out
        # first: 1-5 ms of the Init Duration on a busy disk. Two generations are kept (a
        # release may wait for its child behind one not started yet).
        self._generation += 1
        generation = self._generation
        for name, content in release_files(message).items():
            (self.directory / numbered(name, generation)).write_text(content)
        for name in ("release.json", "release.env"):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / numbered(name, generation - 2)).unlink()
        self._waiting.append(runtime)
        os.write(self._fds["release"], f"go {generation}\n".encode())

    def flush_output(self) -> None:
        self._read("output")
        if self._partial["output"]:
            line, self._partial["output"] = self._partial["output"], b""
            self._on_output(line.decode(errors="replace"))

    def close(self) -> None:
        if self.sockets is not None:
            self.sockets.close()
        for name, fd in self._fds.items():
            if name != "release":
                self._loop.remove_reader(fd)
            os.close(fd)
        self._fds.clear()
        if self._pidfd >= 0:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        self._shell_gone()

    def _read(self, name: str) -> None:
        chunks = [self._partial[name]]
        while True:
            try:
                chunk = os.read(self._fds[name], 1 << 16)
            except (BlockingIOError, KeyError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        *lines, self._partial[name] = b"".join(chunks).split(b"\n")
        for line in lines:
            if name == "output":
                self._on_output(line.decode(errors="replace"))
            else:
                self._event(line.decode(errors="replace").split())

    def _event(self, words: list[str]) -> None:
        if len(words) != 2 or not words[1].isdigit():
            return
        kind, number = words[0], int(words[1])
        if kind == "warm":
            self._watch_shell(number)
        elif kind == "run" and self._waiting:
            self._running = running = self._waiting.popleft()
            running.started(number)
            if self.sockets is not None:
                self.sockets.started(running, number)
        elif kind == "exit" and self._running is not None:
            self.flush_output()  # what it wrote before it ended comes first
            running, self._running = self._running, None
            running.finish(returncode_of(number))

    def _watch_shell(self, pid: int) -> None:
        if self._pidfd >= 0:
            return
        if self.sockets is not None:
            self.sockets.shell_pid = pid
        try:
            self._pidfd = os.pidfd_open(pid)
        except OSError:  # gone already
            self._shell_gone()
            return
        self._loop.add_reader(self._pidfd, self._shell_exited)
        if not self._warm.done():
            self._warm.set_result(True)

    def _shell_exited(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        self._read("events")  # a last `exit` line, if the shell wrote one
        self._shell_gone()

    def _shell_gone(self) -> None:
        """The runtime container's shell is gone: nothing more will run in it."""
        self._dead = True
        if not self._warm.done():
            self._warm.set_result(False)
        for runtime in (self._running, *self._waiting):
            if runtime is not None:
                runtime.finish(-signal.SIGKILL)
        self._running = None
        self._waiting.clear()
