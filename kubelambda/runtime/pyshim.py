"""The runtime container's warm Python shim: `SHIM`'s protocol, with the interpreter pre-started.

A Python runtime container runs this file's source (`python3 -c SOURCE`; it needs nothing of
kubelambda in the image, which the Lambda base image does not have) in place of the `sh`
shim. It speaks the same FIFO protocol (`container.py`: `warm PID`, `run PID`, `exit STATUS` on
`events`, one line on `release` per runtime, the runtime's output on `output`), but before it
says warm it imports the runtime interface client (awslambdaric, from /var/runtime in the
official images) and our own Python bootstrap, which the agent writes into the handshake
folder (`python/`) before it opens its end of the FIFOs. A child forked ahead connects to the
agent's socket (`runtime.sock`) and waits for its release there, one frame (a length, then the
release document); where the agent refused the connection (an older agent) or released it by
the FIFO, it reads the release line and `release-N.json`. It then moves to the task root.
Where the release says `mode: python` (a Zip function on a managed Python runtime without a
wrapper: the decision dev mode makes, `envvars.runs_in_process`) it runs our bootstrap
in-process, which speaks the Runtime API as frames on that connection (the pipe channel, as dev
mode does over its socketpair); otherwise, or where our files are missing, it runs awslambdaric
in-process over HTTP; with an AWS_LAMBDA_EXEC_WRAPPER (which the image's entry point runs) or
where awslambdaric cannot be imported, it execs the entry point with the handler, as the `sh`
shim does. A specialization then costs the handler's import, not an interpreter's start plus a
runtime client (about 50 ms).

argv: HANDSHAKE_DIR TASK_ROOT MODE ENTRY... (MODE is `handler`, as for the `sh` shim).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import resource
import select
import shlex
import socket
import sys
from types import ModuleType

RUNTIME_DIR = "/var/runtime"  # where the official Python images keep awslambdaric
BOOTSTRAP_DIR = "python"  # handshake.BOOTSTRAP_DIR: our bootstrap's package, by the agent
CHANNEL_SOCKET = "runtime.sock"  # handshake.CHANNEL_SOCKET: the pipe channel


def read_env(text: str) -> tuple[dict[str, str], int | None]:
    """`release.env` (export lines, one `ulimit -v KB`) as variables and the address-space cap.

    Split as a whole, not line by line: a quoted value may span lines."""
    env: dict[str, str] = {}
    cap: int | None = None
    words = [*shlex.split(text), "", ""]
    for index, word in enumerate(words[:-2]):
        following, third = words[index + 1], words[index + 2]
        if word == "export" and "=" in following:
            name, _, value = following.partition("=")
            env[name] = value
        elif word == "ulimit" and following == "-v" and third.isdigit():
            cap = int(third) * 1024
    return env, cap


def status_of(wait_status: int) -> int:
    """A child's end as `sh`'s `$?`: its exit code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return code if code >= 0 else 128 - code


# Not imported before release: awslambdaric's modules that read the function's environment when
# imported. Its runtime client (the C part's `initialize_client` keeps AWS_LAMBDA_RUNTIME_API;
# the marshaller it builds reads AWS_EXECUTION_ENV), its bootstrap (the log format and level),
# and `__main__` and `lambda_multi_concurrent_utils`, which import them. Everything else they
# import is preloaded, with the thread pool the 3.12+ runtimes poll /next from. Not the C
# client's shared object (`runtime_client`) either: loaded before the release, it went to
# Lambda's default address (127.0.0.1:9001), not the one the release sets, and every init failed.
PRELOAD = (
    "awslambdaric",
    "awslambdaric.lambda_config",
    "awslambdaric.lambda_context",
    "awslambdaric.lambda_literals",
    "awslambdaric.lambda_runtime_exception",
    "awslambdaric.lambda_runtime_log_utils",
    "awslambdaric.lambda_runtime_marshaller",  # simplejson: most of the import time
    "concurrent.futures.thread",
    "http.client",
    "importlib",
    "json",
    "logging",
    "traceback",
)


def _preload() -> bool:
    """Import what the runtime interface client needs; False: it is not in this image."""
    if os.path.isdir(RUNTIME_DIR) and RUNTIME_DIR not in sys.path:
        sys.path.append(RUNTIME_DIR)
    found = True
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            found = found and not name.startswith("awslambdaric")
    # The C client's C++ runtime, mapped and relocated ahead: loading `runtime_client` at release
    # then costs well under a millisecond instead of about three.
    with contextlib.suppress(ImportError, OSError):
        import ctypes

        ctypes.CDLL("libstdc++.so.6")
    return found


def _our_bootstrap(handshake: str) -> ModuleType | None:
    """Our bootstrap, imported from the files the agent wrote; None where they are missing or
    do not import (the child then runs awslambdaric). Off sys.path again once imported."""
    folder = os.path.join(handshake, BOOTSTRAP_DIR)
    if not os.path.isfile(os.path.join(folder, "kubelambda", "runtime", "bootstrap.py")):
        return None
    sys.path.insert(0, folder)
    try:
        return importlib.import_module("kubelambda.runtime.bootstrap")
    except Exception as exc:  # any failure: the fallback, said on stderr
        print(f"kubelambda shim: our bootstrap did not import: {exc!r}", file=sys.stderr)
        return None
    finally:
        sys.path.remove(folder)


def _release(handshake: str, line: bytes) -> tuple[dict[str, str], int | None, dict[str, object]]:
    """The function's variables, address-space cap and the whole release document:
    `release-N.json` for the line `go N` (`release.json` for a bare `go`) when the agent
    wrote one (json is C; `shlex` takes milliseconds), else the `.env` file."""
    words = line.split()
    suffix = f"-{int(words[1])}" if len(words) == 2 and words[1].isdigit() else ""
    try:
        with open(os.path.join(handshake, f"release{suffix}.json")) as file:
            message = json.load(file)
        return dict(message["env"]), message.get("address_space"), message
    except FileNotFoundError:
        with open(os.path.join(handshake, f"release{suffix}.env")) as file:
            env, cap = read_env(file.read())
        return env, cap, {}


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


def _wait_release(
    handshake: str, sock: socket.socket | None
) -> tuple[bytes, dict[str, object] | None, socket.socket | None]:
    """Wait for this child's release: a frame on `sock` (the document, and the line empty) or a
    line on the `release` FIFO (the document None: read it from its files; `sock` is closed, as
    an agent may have refused it after it was made, so the channel is a new connection, as it
    always was). An EOF on `sock` (the agent did not keep it) leaves the FIFO; an EOF there is
    an empty line."""
    fifo = os.open(os.path.join(handshake, "release"), os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(fifo, True)
    try:
        while True:
            ready, _, _ = select.select([fifo] + ([sock] if sock is not None else []), [], [])
            if sock is not None and sock in ready:
                size = _recv_exactly(sock, 4)
                body = _recv_exactly(sock, int.from_bytes(size, "big")) if size else b""
                if body:
                    return b"", json.loads(body), sock
                sock.close()
                sock = None
                continue
            if sock is not None:
                sock.close()
            return _read_fd_line(fifo), None, None
    finally:
        os.close(fifo)


def _connect(handshake: str) -> socket.socket | None:
    """The pipe channel: a connection to the agent's socket, or None (the agent has none)."""
    here = os.getcwd()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.chdir(handshake)  # a relative name: the folder's path may not fit in sun_path
        sock.connect(CHANNEL_SOCKET)
    except OSError:
        sock.close()
        return None
    finally:
        os.chdir(here)
    return sock


def _child(
    handshake: str,
    task_root: str,
    entry: list[str],
    ric: bool,
    ours: ModuleType | None,
    tell: int,
    events: int,
) -> None:
    """In the child forked ahead: wait for a release line, say so on `tell` (EOF instead: the
    agent is gone), then become the function's runtime. Never returns."""
    # Opened while it waits, not after the release (the agent holds the read ends).
    out = os.open(os.path.join(handshake, "output"), os.O_WRONLY)
    null = os.open(os.devnull, os.O_RDONLY)
    line, document, sock = _wait_release(handshake, _connect(handshake))
    if document is None and not line:
        os._exit(0)
    os.write(tell, b"r")
    os.close(tell)
    os.write(events, f"run {os.getpid()}\n".encode())
    os.close(events)  # the function's code gets none of the handshake's descriptors
    try:
        if document is not None:
            message, given = document, document.get("env")
            env = {str(k): str(v) for k, v in given.items()} if isinstance(given, dict) else {}
            cap = message.get("address_space")
        else:
            env, cap, message = _release(handshake, line)
        os.environ.update(env)
        if isinstance(cap, int):
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        channel = None
        if ours is not None and message.get("mode") == "python":
            if message.get("channel") == "pipe":
                # After `run PID`: the agent matches the peer of a new connection.
                channel = sock if sock is not None else _connect(handshake)
                sock = None
        else:
            ours = None
        if sock is not None:
            sock.close()
        if task_root:
            os.chdir(task_root)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(null)
        os.close(out)
        handler = os.environ.get("_HANDLER", "")
        if ours is not None:
            # As dev mode's shim runs it: the release's sys.path (task root, the layers'
            # /opt/python folders, PYTHONPATH) first, then the interpreter's own.
            extra = message.get("sys_path")
            paths = [p for p in extra if isinstance(p, str)] if isinstance(extra, list) else []
            sys.path[:0] = [p for p in paths if p not in sys.path]
            sys.argv = [str(ours.__file__)]
            # As Lambda's read-only /var/task: the handler's import writes no __pycache__
            # (a folder, a file and a rename on the cold start's path).
            sys.dont_write_bytecode = True
            ours.main(channel_fd=channel.detach() if channel is not None else None)
            os._exit(0)
        if not ric or os.environ.get("AWS_LAMBDA_EXEC_WRAPPER"):
            # The image's entry point: it runs a wrapper (the official /var/runtime/bootstrap
            # does), which awslambdaric in-process would skip.
            os.execvp(entry[0], [*entry, handler])
        # As `python3 -m awslambdaric HANDLER` would see it: PYTHONPATH first, then the
        # working directory (the task root), then the interpreter's own path.
        extra_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:0] = [*extra_paths, os.getcwd()]
        sys.argv = ["awslambdaric", handler]
        importlib.import_module("awslambdaric.__main__").main(sys.argv)
        os._exit(0)
    except SystemExit as exc:
        os._exit(exc.code if isinstance(exc.code, int) else 1)
    except BaseException as exc:  # reported on the output FIFO; the agent sees the exit
        print(f"kubelambda shim: {exc!r}", file=sys.stderr, flush=True)
        os._exit(127)


def _read_fd_line(fd: int) -> bytes:
    """One line, byte by byte as `sh`'s `read` does: a buffered read could swallow the next
    release line along with this one."""
    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
    return line


def main(argv: list[str]) -> None:
    handshake, task_root, _mode, *entry = argv
    for name in ("events", "release", "output"):
        path = os.path.join(handshake, name)
        if not os.path.exists(path):
            with contextlib.suppress(FileExistsError):
                os.mkfifo(path)
    ric = _preload()
    # Opening `events` waits for the agent to hold its end, and the agent writes our bootstrap
    # before it opens the FIFOs: from here on the files are there, if this agent ships them.
    # Kept open: each child writes its `run PID` on it without an open of its own.
    events = os.open(os.path.join(handshake, "events"), os.O_WRONLY)
    ours = _our_bootstrap(handshake)
    # The child inherits this heap: frozen, its collections never walk it (nor its pages).
    gc.freeze()
    os.write(events, f"warm {os.getpid()}\n".encode())
    while True:
        # Fork before the release, not at it: the fork (and the wait for a core to run the
        # child on) is off the cold start's path; the release line wakes a child already up.
        sys.stdout.flush()
        sys.stderr.flush()
        told, tell = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(told)
            _child(handshake, task_root, entry, ric, ours, tell, events)
        os.close(tell)
        _, wait_status = os.waitpid(pid, 0)
        released = os.read(told, 1)
        os.close(told)
        if not released:
            return  # the child read EOF: the agent closed its end for good
        os.write(events, f"exit {status_of(wait_status)}\n".encode())


if __name__ == "__main__":
    main(sys.argv[1:])
