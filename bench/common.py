"""What the side-by-side benchmarks share: the no-op function, served systems as subprocesses
that say when they are ready, and the measurements (warm latency with a plain HTTP client,
throughput with aiohttp clients and its CPU per call, cold starts of new functions, the first
call after ready).

A `Served` system is anything that answers Lambda's Invoke API on loopback:
`POST /2015-03-31/functions/NAME/invocations`. Every measurement takes one system and one
batch, so a caller can interleave systems batch by batch on a shared machine.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

NOOP = "def handler(event, context):\n    return event\n"
INVOKE = "/2015-03-31/functions/{name}/invocations"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


class Served:
    """A system under test in its own process group, its output read line by line."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        ready: str,
        port: int,
        function: Callable[[str], str],
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.function = function  # a manifest's function name -> the name the API knows
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.log = log
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ready_seen = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.ready_at = self._wait_for(ready)

    def _read(self) -> None:
        """Lines go to the queue until the system is ready; after that the output is drained
        in large reads only (a per-line reader here would take the client's CPU, and more
        from the system that logs more)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        sink = self.log.open("ab") if self.log else None
        partial = b""
        while chunk := os.read(fd, 1 << 16):
            if sink is not None:
                sink.write(chunk)
            if self.ready_seen.is_set():
                continue
            *lines, partial = (partial + chunk).split(b"\n")
            for line in lines:
                self.lines.put(line.decode(errors="replace") + "\n")
        if sink is not None:
            sink.close()
        self.lines.put(None)

    def _wait_for(self, marker: str, within: float = 120.0) -> float:
        pattern = re.compile(marker)
        deadline = time.monotonic() + within
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            if pattern.search(line):
                self.ready_seen.set()
                return time.perf_counter()
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready:\n{''.join(seen[-30:])}")

    def path(self, function: str) -> str:
        return INVOKE.format(name=self.function(function))

    def url(self, function: str) -> str:
        return f"http://127.0.0.1:{self.port}{self.path(function)}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


class PlainClient:
    """http.client on one keep-alive connection: the "plain HTTP client" of the tables."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, path: str, body: bytes = b"{}") -> float:
        start = time.perf_counter()
        self.connection.request("POST", path, body=body)
        response = self.connection.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - start
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}: {data[:300]!r}")
        return elapsed

    def close(self) -> None:
        self.connection.close()


def warm_latency(system: Served, calls: int, warmup: int = 20) -> list[float]:
    """Sequential warm calls of `noop`, seconds each."""
    client = PlainClient(system.port)
    path = system.path("noop")
    try:
        for _ in range(warmup):
            client.call(path)
        return [client.call(path) for _ in range(calls)]
    finally:
        client.close()


@dataclass(frozen=True)
class ProcStat:
    """One process, from /proc/PID/stat."""

    parent: int
    group: int  # process group
    command: str
    seconds: float  # CPU so far, user + system


def proc_stats() -> dict[int, ProcStat]:
    """Every live process by PID; one that exits while they are read is left out."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, ProcStat] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                text = file.read()
        except OSError:
            continue  # gone meanwhile
        fields = text[text.rfind(")") + 2 :].split()
        stats[int(entry)] = ProcStat(
            parent=int(fields[1]),
            group=int(fields[2]),
            command=text[text.find("(") + 1 : text.rfind(")")],
            seconds=(int(fields[11]) + int(fields[12])) / tick,
        )
    return stats


def tree_cpu(pid: int) -> dict[str, float]:
    """CPU seconds used so far by `pid` and its live descendants, summed per command name. A
    process that exits between two readings drops out of the sum."""
    stats = proc_stats()
    tree = {pid} if pid in stats else set()
    while more := {p for p, stat in stats.items() if stat.parent in tree} - tree:
        tree |= more
    per: dict[str, float] = {}
    for p in tree:
        per[stats[p].command] = per.get(stats[p].command, 0.0) + stats[p].seconds
    return per


@dataclass(frozen=True)
class Rate:
    """One throughput batch: invokes/s, and the CPU each counted call cost (ms)."""

    per_second: float
    server_ms: dict[str, float]  # the system's process tree, per command name
    client_ms: float  # the aiohttp client (this thread)


async def _throughput(url: str, connections: int, seconds: float, warmup: float, pid: int) -> Rate:
    done = 0

    async def worker(session: aiohttp.ClientSession, until: float, count: bool) -> None:
        nonlocal done
        while time.perf_counter() < until:
            async with session.post(url, data=b"{}") as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}")
            if count:
                done += 1

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm-up: `connections` warm environments exist before anything is counted.
        until = time.perf_counter() + warmup
        await asyncio.gather(*(worker(session, until, False) for _ in range(connections)))
        server_before, client_before = tree_cpu(pid), time.thread_time()
        start = time.perf_counter()
        await asyncio.gather(*(worker(session, start + seconds, True) for _ in range(connections)))
        elapsed = time.perf_counter() - start
        client = time.thread_time() - client_before
        server_after = tree_cpu(pid)
    calls = max(done, 1)
    server = {
        command: (used - server_before.get(command, 0.0)) * 1000 / calls
        for command, used in server_after.items()
    }
    return Rate(done / elapsed, server, client * 1000 / calls)


def throughput(system: Served, connections: int, seconds: float, warmup: float = 1.0) -> Rate:
    """No-op invokes/s with `connections` aiohttp clients (one process, like the issue's),
    and what each call cost the system's processes and the client in CPU."""
    return asyncio.run(
        _throughput(system.url("noop"), connections, seconds, warmup, system.proc.pid)
    )


def cold_burst(system: Served, functions: Sequence[str]) -> list[float]:
    """The first call of each of `functions` (never called before), back to back, seconds."""
    client = PlainClient(system.port)
    try:
        return [client.call(system.path(name)) for name in functions]
    finally:
        client.close()


def first_call_after_ready(system: Served) -> float:
    """Seconds for the first call, made the moment `ready` was read (the system just started)."""
    client = PlainClient(system.port)
    try:
        return client.call(system.path("noop"))
    finally:
        client.close()


def kubelambda_folder(folder: Path, new_functions: Sequence[str]) -> Path:
    """A dev-mode folder: `noop` and the never-called `new_functions`, all the same handler."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ["noop", *new_functions]:
        (folder / f"{name}.yaml").write_text(
            "apiVersion: kubelambda.dev/v1alpha1\nkind: Function\n"
            f"metadata: {{name: {name}}}\n"
            "spec:\n  runtime: python3.11\n  handler: app.handler\n"
            "  code: {inline: {app.py: "
            '"def handler(event, context):\\n    return event\\n"}}\n'
        )
    return folder


def start_kubelambda(folder: Path, *extra: str, log: Path | None = None) -> Served:
    port = free_port()
    kubelambda = str(Path(sys.executable).parent / "kubelambda")
    return Served(
        "kubelambda dev",
        [kubelambda, "dev", str(folder), "--port", str(port), "--no-reload", *extra],
        ready=r"^ready: ",
        port=port,
        function=lambda name: name,
        log=log,
    )


def new_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(count)]
