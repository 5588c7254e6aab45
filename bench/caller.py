"""A timing client in its own process, for the cluster benches.

The process kubelet of `tests/cluster` is a thread of the bench's own process, and it reads
every pod's output as it comes (the agents log each invocation): a client in that process would
wait for the GIL while the kubelet reads the lines its own call caused, which a client of a real
cluster never does. So `Caller` starts `python -m bench.caller URL` and asks it for timed calls;
the child imports only the standard library and times with `time.perf_counter`.

The protocol is one JSON line each way: `["kept", NAME, N]` (N calls on the connection kept for
NAME, as an SDK keeps one), `["fresh", NAME, N]` (a new connection per call) or `["tail", NAME]`
(one call on a new connection with `X-Amz-Log-Type: Tail`); the answer is `{"ms": [...]}` (and
`"tail"`, the decoded log tail, for the last), or `{"error": TEXT}`.
"""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import sys
import time
import urllib.parse
from typing import Any


class Caller:
    """The child process, started on `url` (the gateway's base URL)."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.caller", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _ask(self, *command: object) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the caller exited ({self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def kept(self, name: str, calls: int) -> list[float]:
        """`calls` calls of `name` on the connection kept for it; client-side ms."""
        return list(self._ask("kept", name, calls)["ms"])

    def fresh(self, name: str, calls: int) -> list[float]:
        """`calls` calls of `name`, each on a new connection; client-side ms."""
        return list(self._ask("fresh", name, calls)["ms"])

    def tail(self, name: str) -> tuple[float, str]:
        """One call on a new connection asking for the log tail: (ms, the tail)."""
        answer = self._ask("tail", name)
        return float(answer["ms"][0]), str(answer["tail"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def __enter__(self) -> Caller:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _call(
    conn: http.client.HTTPConnection, name: str, headers: dict[str, str]
) -> tuple[float, http.client.HTTPResponse]:
    started = time.perf_counter()
    conn.request("POST", f"/2015-03-31/functions/{name}/invocations", b"{}", headers)
    response = conn.getresponse()
    response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise RuntimeError(f"{name} answered {response.status}")
    return elapsed, response


def serve(url: str) -> None:
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(host, port, timeout=60)

    kept: dict[str, http.client.HTTPConnection] = {}
    for line in sys.stdin:
        kind, name, *rest = json.loads(line)
        try:
            if kind == "kept":
                conn = kept.setdefault(name, connect())
                answer: dict[str, Any] = {"ms": [_call(conn, name, {})[0] for _ in range(rest[0])]}
            elif kind == "fresh":
                samples = []
                for _ in range(rest[0]):
                    conn = connect()
                    samples.append(_call(conn, name, {})[0])
                    conn.close()
                answer = {"ms": samples}
            else:
                conn = connect()
                elapsed, response = _call(conn, name, {"X-Amz-Log-Type": "Tail"})
                conn.close()
                tail = base64.b64decode(response.headers["X-Amz-Log-Result"]).decode()
                answer = {"ms": [elapsed], "tail": tail}
        except (OSError, RuntimeError, http.client.HTTPException) as exc:
            answer = {"error": f"{kind} {name}: {exc!r}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve(sys.argv[1])
