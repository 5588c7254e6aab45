"""The runtime container's socket (`runtime.sock`): the connections of the shim's children.

The warm Python shim (`pyshim.py`) forks each child ahead of its release, and the child
connects here before it waits. `ChildSockets` keeps that connection when its peer is a child
of the shim that is not running yet (SO_PEERCRED, and the peer's parent in /proc), sends the
release on it as one frame (`handshake.release_frame`), and, once the child says `run PID`,
hands it to the Environment as the pipe channel on the child's first frame (a child that runs
awslambdaric or execs the entry point closes it instead). A child released by the FIFO line
(an older shim, or a release before the connection was accepted) connects after its `run
PID`; that connection is the released runtime's and is handed over the same way. Anyone else
is refused: no release and no Runtime API for them. `container.ContainerLink` drives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from kubelambda.runtime.handshake import CHANNEL_SOCKET, release_frame
from kubelambda.runtime.release import Release

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
AHEAD_WAIT = 1.0  # seconds a release waits for a re-init's child to connect (else: the line)


class Released(Protocol):
    """What this module reads of a released runtime (`container.ContainerRuntime`)."""

    pid: int | None
    wants_channel: bool

    @property
    def alive(self) -> bool: ...


R = TypeVar("R", bound=Released)


class ChildSockets(Generic[R]):
    """See the module docstring. `running()` is the runtime that said `run PID`, if any;
    `read_events()` reads the events FIFO first (a `run PID` may precede a connection);
    `on_channel` serves a released runtime's connection as the pipe channel."""

    def __init__(
        self,
        directory: Path,
        on_channel: Callable[[R, socket.socket], None],
        *,
        running: Callable[[], R | None],
        read_events: Callable[[], None],
    ) -> None:
        self.directory = directory
        self.shell_pid: int | None = None  # the shim's, from its `warm PID`
        self._on_channel = on_channel
        self._running = running
        self._read_events = read_events
        self._loop = asyncio.get_running_loop()
        self._listener: socket.socket | None = None
        # The connection of the child forked ahead (PID, socket), before its release; then,
        # released on it, until its `run PID`.
        self._ahead: tuple[int, socket.socket] | None = None
        self._released: tuple[int, socket.socket] | None = None
        self._listening_to: socket.socket | None = None  # a released child's, until it speaks
        self._ahead_ready = asyncio.Event()
        self._children_connect = False  # this shim's children connect ahead (the Python shim)

    @property
    def connected_ahead(self) -> bool:
        """Whether the shim's next child is connected, waiting for its release on it."""
        return self._ahead is not None

    def listen(self) -> None:
        path = self.directory / CHANNEL_SOCKET
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _bind(listener, path)
            listener.listen(8)
        except OSError:
            listener.close()
            raise
        listener.setblocking(False)
        self._listener = listener
        self._loop.add_reader(listener.fileno(), self._accept)

    async def send_release(self, message: Release, dead: Callable[[], bool]) -> bool:
        """Release the waiting child on its connection; False if there is none (the caller
        writes the release line), or the shim died meanwhile (`dead()`)."""
        self._accept()
        if self._ahead is None and self._children_connect:
            # A re-init's child, just forked: it can take no release before it is up anyway.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(AHEAD_WAIT):
                    await self._ahead_ready.wait()
        if self._ahead is None or dead():
            return False
        pid, conn = self._ahead
        self._ahead = None
        self._ahead_ready.clear()
        try:
            conn.send(release_frame(message))  # far below the socket's buffer: whole
        except OSError:  # that child is gone: its successor reads the line
            conn.close()
            return False
        if self._released is not None:  # a child that died before its `run PID`
            self._released[1].close()
        self._released = (pid, conn)
        return True

    def started(self, runtime: R, pid: int) -> None:
        """`runtime` said `run PID`: the connection its child made before, if any, is its."""
        for held in (self._released, self._ahead):
            if held is not None and held[0] == pid:
                if held is self._released:
                    self._released = None
                else:
                    self._ahead = None
                    self._ahead_ready.clear()
                self._await_first_frame(runtime, held[1])
                return

    def close(self) -> None:
        self._drop_ahead()
        if self._listening_to is not None:
            self._loop.remove_reader(self._listening_to.fileno())
            self._listening_to.close()
            self._listening_to = None
        if self._released is not None:
            self._released[1].close()
            self._released = None
        if self._listener is not None:
            self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
            with contextlib.suppress(OSError):
                (self.directory / CHANNEL_SOCKET).unlink()

    def _accept(self) -> None:
        """Every connection waiting on the listener (a release drains it first, too)."""
        while self._listener is not None:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            self._take(conn)

    def _take(self, conn: socket.socket) -> None:
        # A child released by its line wrote `run PID` before it connected: read it first.
        self._read_events()
        pid = _PEERCRED.unpack(
            conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )[0]
        running = self._running()
        if running is not None and running.pid == pid and running.alive:
            self._await_first_frame(running, conn)
        elif self.shell_pid is not None and _parent_of(pid) == self.shell_pid:
            # The shim's next child, forked ahead: its release goes on this connection.
            self._drop_ahead()
            conn.setblocking(False)
            self._ahead = (pid, conn)
            self._children_connect = True
            self._ahead_ready.set()
        else:
            conn.close()  # not the shim's: it gets no release and no Runtime API here

    def _await_first_frame(self, runtime: R, conn: socket.socket) -> None:
        """Hand the released runtime's connection over on its first frame: a child that runs
        something other than our bootstrap closes it instead."""
        if self._listening_to is not None:
            self._loop.remove_reader(self._listening_to.fileno())
            self._listening_to.close()
        conn.setblocking(False)
        self._listening_to = conn
        self._loop.add_reader(conn.fileno(), self._first_frame, runtime, conn)

    def _first_frame(self, runtime: R, conn: socket.socket) -> None:
        self._loop.remove_reader(conn.fileno())
        self._listening_to = None
        try:
            spoke = conn.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            self._await_first_frame(runtime, conn)
            return
        except OSError:
            spoke = b""
        if spoke and runtime.wants_channel and runtime.alive and runtime is self._running():
            conn.setblocking(True)
            self._on_channel(runtime, conn)
        else:
            conn.close()

    def _drop_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead[1].close()
            self._ahead = None
        self._ahead_ready.clear()


def _parent_of(pid: int) -> int | None:
    """`pid`'s parent (the runtime container shares the pod's PID namespace), or None."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"PPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _bind(listener: socket.socket, path: Path) -> None:
    """Bind a Unix socket to `path`. sun_path holds 107 bytes and an emptyDir's folder on a node
    (or in the test kubelet) can be longer: then through the folder's short /proc/self/fd name."""
    if len(os.fsencode(path)) < 100:
        listener.bind(str(path))
        return
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        listener.bind(f"/proc/self/fd/{folder}/{path.name}")
    finally:
        os.close(folder)
