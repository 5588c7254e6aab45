"""The runtime container's warm Python shim: `SHIM`'s protocol, with the interpreter pre-started.

A Python runtime container runs this file's source (`python3 -c SOURCE`; it imports nothing of
kubelambda, which the Lambda base image does not have) in place of the `sh` shim. It speaks the
same FIFO protocol (`container.py`: `warm PID`, `run PID`, `exit STATUS` on `events`, one line
on `release` per runtime, the runtime's output on `output`), but it imports the runtime
interface client (awslambdaric, from /var/runtime in the official images) before it says warm,
and a child forked ahead waits for each release line, then applies `release.json`, moves to the
task root and runs awslambdaric in-process. A specialization then costs the handler's import
and awslambdaric's few modules that read the function's environment at import, not an
interpreter's start plus all of awslambdaric (about 50 ms). Where awslambdaric cannot be
imported, the child execs the entry point with the handler, as the `sh` shim does.

argv: HANDSHAKE_DIR TASK_ROOT MODE ENTRY... (MODE is `handler`, as for the `sh` shim).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import resource
import shlex
import sys

RUNTIME_DIR = "/var/runtime"  # where the official Python images keep awslambdaric


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


def _event(handshake: str, line: str) -> None:
    with open(os.path.join(handshake, "events"), "w") as events:
        events.write(line + "\n")


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
    # The child inherits this heap: frozen, its collections never walk it (nor copy its pages).
    gc.freeze()
    return found


def _release(handshake: str) -> tuple[dict[str, str], int | None]:
    """The function's variables and address-space cap: `release.json` when the agent wrote
    one (json is C; `shlex` takes milliseconds), else `release.env`."""
    try:
        with open(os.path.join(handshake, "release.json")) as file:
            message = json.load(file)
        return dict(message["env"]), message.get("address_space")
    except FileNotFoundError:
        with open(os.path.join(handshake, "release.env")) as file:
            return read_env(file.read())


def _child(handshake: str, task_root: str, entry: list[str], ric: bool, tell: int) -> None:
    """In the child forked ahead: wait for a release line, say so on `tell` (EOF instead: the
    agent is gone), then become the function's runtime. Never returns."""
    if not _read_line(os.path.join(handshake, "release")):
        os._exit(0)
    os.write(tell, b"r")
    os.close(tell)
    _event(handshake, f"run {os.getpid()}")
    try:
        env, cap = _release(handshake)
        os.environ.update(env)
        if cap is not None:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        if task_root:
            os.chdir(task_root)
        out = os.open(os.path.join(handshake, "output"), os.O_WRONLY)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        handler = os.environ.get("_HANDLER", "")
        if not ric:
            os.execvp(entry[0], [*entry, handler])
        # As `python3 -m awslambdaric HANDLER` would see it: PYTHONPATH first, then the
        # working directory (the task root), then the interpreter's own path.
        extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:0] = [*extra, os.getcwd()]
        sys.argv = ["awslambdaric", handler]
        importlib.import_module("awslambdaric.__main__").main(sys.argv)
        os._exit(0)
    except SystemExit as exc:
        os._exit(exc.code if isinstance(exc.code, int) else 1)
    except BaseException as exc:  # reported on the output FIFO; the agent sees the exit
        print(f"kubelambda shim: {exc!r}", file=sys.stderr, flush=True)
        os._exit(127)


def _read_line(path: str) -> bytes:
    """One line, byte by byte as `sh`'s `read` does: a buffered read could swallow the next
    release line along with this one."""
    fd = os.open(path, os.O_RDONLY)
    try:
        line = b""
        while not line.endswith(b"\n"):
            byte = os.read(fd, 1)
            if not byte:
                break
            line += byte
        return line
    finally:
        os.close(fd)


def main(argv: list[str]) -> None:
    handshake, task_root, _mode, *entry = argv
    for name in ("events", "release", "output"):
        path = os.path.join(handshake, name)
        if not os.path.exists(path):
            with contextlib.suppress(FileExistsError):
                os.mkfifo(path)
    ric = _preload()
    _event(handshake, f"warm {os.getpid()}")
    while True:
        # Fork before the release, not at it: the fork (and the wait for a core to run the
        # child on) is off the cold start's path; the release line wakes a child already up.
        sys.stdout.flush()
        sys.stderr.flush()
        told, tell = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(told)
            _child(handshake, task_root, entry, ric, tell)
        os.close(tell)
        _, wait_status = os.waitpid(pid, 0)
        released = os.read(told, 1)
        os.close(told)
        if not released:
            return  # the child read EOF: the agent closed its end for good
        _event(handshake, f"exit {status_of(wait_status)}")


if __name__ == "__main__":
    main(sys.argv[1:])
