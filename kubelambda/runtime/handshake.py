"""What the agent and the runtime container's shim say to each other, as files: pure.

The handshake folder (`HANDSHAKE_DIR`, a shared emptyDir) holds the three FIFOs, the release
files the agent writes before each release line, our Python bootstrap's modules for the warm
Python shim, and the pipe channel's socket; `container.py` drives them (see its docstring for
the protocol). This module holds the names, the `sh` shim's source (`SHIM`), the Python shim's
(`PYSHIM`), and the contents the agent writes, so the operator's pod builder can name them
without the agent's I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from kubelambda.runtime.limits import address_space
from kubelambda.runtime.release import Release

HANDSHAKE_DIR = "/kubelambda"
FIFOS = ("events", "release", "output")
BOOTSTRAP_DIR = "python"  # in the handshake folder: our bootstrap's package, for the Python shim
CHANNEL_SOCKET = "runtime.sock"  # in the handshake folder: the pipe channel's listening socket
# What our bootstrap is made of (stdlib only, a unit test checks), shipped as `kubelambda.runtime`.
BOOTSTRAP_MODULES = ("bootstrap.py", "runtime_client.py", "handler_stream.py")
# Where a custom runtime's (provided.*) bootstrap is looked for, in Lambda's order.
BOOTSTRAP_PATHS = ("/var/task/bootstrap", "/opt/bootstrap")

# $1: the handshake folder, $2: the task root to run in (empty: stay in the container's working
# directory, as an image's entry point expects), $3: `handler` to pass the function's handler as
# the entry point's last argument (the official images' `/lambda-entrypoint.sh HANDLER`; a
# generic warm pod learns it only at release), `bootstrap` to run the first executable of the
# paths that follow (a custom runtime's Zip brings its bootstrap in /var/task or /opt, where
# Lambda looks, not in the image's /var/runtime), or `image`; then the entry point.
SHIM = """d=$1; t=$2; h=$3; shift 3
for f in events release output; do [ -p "$d/$f" ] || mkfifo "$d/$f" 2>/dev/null; done
echo "warm $$" > "$d/events"
while read go n < "$d/release"; do
  ( . "$d/release${n:+-$n}.env" && { [ -z "$t" ] || cd "$t"; } &&
    { [ "$h" != handler ] || set -- "$@" "$_HANDLER"; } &&
    { [ "$h" != bootstrap ] || { for b; do [ -x "$b" ] && break; done; set -- "$b"; }; } &&
    exec "$@" ) > "$d/output" 2>&1 < /dev/null &
  echo "run $!" > "$d/events"
  wait $!
  echo "exit $?" > "$d/events"
done
"""


# The warm Python shim (pyshim.py), run as `python3 -c PYSHIM` where the image has Python.
PYSHIM = (Path(__file__).with_name("pyshim.py")).read_text()


def bootstrap_files() -> dict[str, str]:
    """Our Python bootstrap as files under BOOTSTRAP_DIR: path (relative) → source."""
    here = Path(__file__).parent
    files = {
        "kubelambda/__init__.py": '"""kubelambda\'s Python bootstrap, shipped by the agent."""\n',
        "kubelambda/runtime/__init__.py": "",
    }
    for name in BOOTSTRAP_MODULES:
        files[f"kubelambda/runtime/{name}"] = (here / name).read_text()
    return files


def quote(value: str) -> str:
    """A POSIX shell single-quoted word."""
    return "'" + value.replace("'", "'\\''") + "'"


def env_file(env: Mapping[str, str]) -> str:
    """`release.env`: the function's variables as `export` lines for the shim to source."""
    return "".join(f"export {name}={quote(value)}\n" for name, value in env.items())


def release_files(message: Release) -> dict[str, str]:
    """What a release writes beside the FIFOs: `release.env` for the `sh` shim to source (the
    function's variables and its memorySize as `ulimit -v`) and the same as `release.json`, for
    the Python shim to parse in its released child (json is C; shlex takes milliseconds), with
    how to run it: `mode` (`python`: our bootstrap, else the image's entry point), `channel`
    and `sys_path` (`prepare.py`)."""
    env, memory_mb = message["env"], message.get("memory_mb")
    text = env_file(env)
    cap_kb = address_space(memory_mb) // 1024 if memory_mb else None
    if cap_kb:  # the sourcing shell caps what it execs: the function's own memorySize
        text += f"ulimit -v {cap_kb} 2>/dev/null\n"
    return {"release.json": json.dumps(release_document(message)), "release.env": text}


def release_document(message: Release) -> dict[str, object]:
    """What the Python shim's child applies: the function's variables, its address-space cap
    (from memorySize), and how to run it (`mode`, `channel`, `sys_path`; `prepare.py`). As
    `release.json`, or as the one frame the agent sends on the child's pre-connected socket."""
    memory_mb = message.get("memory_mb")
    cap_kb = address_space(memory_mb) // 1024 if memory_mb else None
    return {
        "env": dict(message["env"]),
        "address_space": cap_kb * 1024 if cap_kb else None,
        "mode": message["mode"],
        "channel": message.get("channel", "http"),
        "sys_path": message.get("sys_path", []),
    }


def release_frame(message: Release) -> bytes:
    """The release on the socket: a 4-byte big-endian length, then `release_document`'s JSON."""
    body = json.dumps(release_document(message)).encode()
    return len(body).to_bytes(4, "big") + body


def numbered(name: str, generation: int) -> str:
    """`release.json`, generation 3 → `release-3.json` (the name a release line carries)."""
    stem, _, extension = name.partition(".")
    return f"{stem}-{generation}.{extension}"


def returncode_of(status: int) -> int:
    """`wait`'s status → Popen's convention (negative for a signal), for Runtime.ExitError."""
    return -(status - 128) if status > 128 else status
