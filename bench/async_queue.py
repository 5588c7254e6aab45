"""Async invocation: durable enqueue rate per backend, and enqueue -> start of execution.

Three measurements, each on SQLite (the embedded default) and on NATS JetStream (a nats-server
started here on a free loopback port with `-js`):

- **backend**: `AsyncQueue.enqueue` called in-process by 256 concurrent producers; each call
  returns only once its event is durable (SQLite: its group commit is fsynced; JetStream: the
  PubAck). The queue's own ceiling, without HTTP.
- **gateway**: Event invokes through `kubelambda dev` (a subprocess), each answered 202 after
  the event is durable, driven by wrk (C, 1 thread, 32 connections) while the worker processes
  the events (a no-op function). What a client gets. Then the same with the worker held back
  (the gateway in-process with its worker never started): the intake's own ceiling.
- **latency**: one event at a time to a warm function, from just before the client's POST to
  the first line of the handler (the function records `time.time()`); p50 and p90.

Run: `.venv/bin/python -m bench.async_queue [--events N] [--seconds S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kubelambda.gateway.asyncq.event import AsyncEvent
from kubelambda.gateway.asyncq.jetstream import JetStreamQueue
from kubelambda.gateway.asyncq.queue import AsyncQueue
from kubelambda.gateway.asyncq.sqlite import SqliteQueue
from kubelambda.serving.names import FunctionRef

KUBELAMBDA = str(Path(sys.executable).parent / "kubelambda")
HANDLER = """\
import os, time
def handler(event, context):
    started = time.time()
    if event.get("mark"):
        with open(os.environ["OUT"], "a") as out:
            out.write(f"{event['mark']} {started}\\n")
    return None
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def nats_server(root: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        ["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(root / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open(port), 10, "nats-server")
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


async def backend_rate(queue: AsyncQueue, events: int, producers: int = 256) -> float:
    await queue.start()
    try:
        payload = json.dumps({"key": "value", "n": 1}).encode()
        ref = FunctionRef("default", "bench", None)
        batch = [AsyncEvent.accept(ref, payload, time.time()) for _ in range(events)]
        pending = iter(batch)

        async def producer() -> None:
            for event in pending:
                await queue.enqueue(event)

        started = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(producers)))
        return events / (time.perf_counter() - started)
    finally:
        await queue.close()


class Gateway:
    def __init__(self, root: Path, queue_args: list[str], worker: bool = True) -> None:
        self.folder = root / "fns"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.out = root / "starts.txt"
        manifest = {
            "apiVersion": "kubelambda.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "noop"},
            "spec": {
                "runtime": f"python{sys.version_info.major}.{sys.version_info.minor}",
                "handler": "app.handler",
                "code": {"inline": {"app.py": HANDLER}},
                "environment": {"variables": {"OUT": str(self.out)}},
            },
        }
        (self.folder / "noop.yaml").write_text(json.dumps(manifest))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (root / "dev.log").open("w")
        command = [KUBELAMBDA, "dev", str(self.folder), "--port", str(self.port), "--no-reload"]
        if not worker:  # the same gateway in-process, its worker never started
            command = [sys.executable, "-m", "bench.async_queue", "--serve-without-worker"]
            command += [str(self.folder), str(self.port)]
        self.proc = subprocess.Popen(
            [*command, *queue_args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=Path(__file__).resolve().parent.parent,
        )
        log_path = root / "dev.log"
        wait_for(lambda: "\nready: " in log_path.read_text(), 60, "kubelambda dev")

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        return sum(float(v) for v in re.findall(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M))

    def drained(self) -> bool:
        received = self.metric("kubelambda_async_events_received_total")
        return self.metric("kubelambda_invocations_total") >= received

    @property
    def invoke_url(self) -> str:
        return f"{self.url}/2015-03-31/functions/noop/invocations"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()


def post_event(url: str, payload: dict[str, object]) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"X-Amz-Invocation-Type": "Event"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        status: int = response.status
        return status


def wrk_rate(url: str, seconds: float) -> tuple[float, int] | None:
    """(202s per second, non-2xx responses) from wrk, or None without wrk."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = Path(tempfile.mkdtemp(prefix="bench-async-")) / "event.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.body = \'{"key": "value"}\'\n'
        'wrk.headers["X-Amz-Invocation-Type"] = "Event"\n'
    )
    out = subprocess.run(
        [wrk, "-t1", "-c32", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    rate = float(found.group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, int(bad.group(1)) if bad else 0


def start_latency(gateway: Gateway, samples: int) -> list[float]:
    """Seconds from before the POST to the handler's first line, one event at a time."""
    post_event(gateway.invoke_url, {"mark": "warmup"})
    wait_for(lambda: gateway.out.exists() and "warmup" in gateway.out.read_text(), 30, "warm-up")
    latencies = []
    for i in range(samples):
        mark = f"m{i}"
        sent = time.time()
        assert post_event(gateway.invoke_url, {"mark": mark}) == 202
        pattern = re.compile(rf"^{mark} (\S+)$", re.M)

        def started(p: re.Pattern[str] = pattern) -> re.Match[str] | None:
            return p.search(gateway.out.read_text())

        wait_for(started, 30, mark)
        found = started()
        assert found is not None
        latencies.append(float(found.group(1)) - sent)
    return latencies


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


def serve_without_worker(folder: str, port: str, flags: list[str]) -> None:
    """`kubelambda dev` whose async worker never starts: the intake's own ceiling."""
    from kubelambda.dev.server import DevServer, DevSettings
    from kubelambda.loop import run_loop

    queue = flags[1] if flags[:1] == ["--queue"] else None
    server = DevServer(DevSettings(Path(folder), port=int(port), reload=False, queue=queue))
    server.asynq.worker.start = lambda: None  # type: ignore[method-assign]

    async def serve() -> None:
        await server.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop()

    run_loop(serve())


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-without-worker"]:
        serve_without_worker(argv[1], argv[2], argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="events for the backend rate")
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per backend")
    parser.add_argument("--samples", type=int, default=200, help="latency samples per backend")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-async-"))
    rows: list[tuple[str, str]] = []
    try:
        with nats_server(root) as nats_url:
            # name -> (a queue for the in-process run, the gateway's --queue for a tag)
            backends: dict[str, tuple[Callable[[], AsyncQueue], Callable[[str], list[str]]]] = {
                "SQLite": (
                    lambda: SqliteQueue(root / "bench.sqlite3"),
                    lambda tag: ["--queue", f"sqlite:///{root / tag / 'q.sqlite3'}"],
                ),
                "JetStream": (
                    lambda: JetStreamQueue([nats_url], stream="BENCH", prefix="bench"),
                    lambda tag: ["--queue", f"{nats_url}?stream={tag.upper()}&prefix={tag}"],
                ),
            }
            for name, (make_queue, flags_for) in backends.items():
                queue = make_queue()
                rate = asyncio.run(backend_rate(queue, args.events))
                figure = f"{rate:,.0f}/s"
                if isinstance(queue, SqliteQueue):  # group commit: events per fsynced commit
                    figure += f" ({args.events / max(queue.commits, 1):,.0f} events per commit)"
                rows.append((f"{name}: backend enqueue, durable, in-process", figure))
                print(rows[-1][0], rows[-1][1], flush=True)
                intake = Gateway(root / f"idle-{name}", flags_for("idle"), worker=False)
                try:
                    got = wrk_rate(intake.invoke_url, args.seconds)
                    figure = "skipped (no wrk)" if got is None else f"{got[0]:,.0f}/s"
                    rows.append((f"{name}: 202s through the gateway, worker held back", figure))
                    print(rows[-1][0], rows[-1][1], flush=True)
                finally:
                    intake.stop()
                gateway = Gateway(root / f"gw-{name}", flags_for("gw"))
                try:
                    got = wrk_rate(gateway.invoke_url, args.seconds)
                    if got is None:
                        rows.append((f"{name}: 202s through the gateway", "skipped (no wrk)"))
                    else:
                        rate, bad = got
                        note = f" ({bad} non-2xx)" if bad else ""
                        rows.append(
                            (f"{name}: 202s through the gateway (wrk)", f"{rate:,.0f}/s{note}")
                        )
                    print(rows[-1][0], rows[-1][1], flush=True)
                    # Time single events only once the worker has run all wrk enqueued.
                    wait_for(gateway.drained, 300, "the worker to drain the queue")
                    lat = start_latency(gateway, args.samples)
                    rows.append(
                        (
                            f"{name}: enqueue -> handler start, warm (p50 / p90)",
                            f"{statistics.median(lat) * 1000:.2f} ms / "
                            f"{percentile(lat, 0.9) * 1000:.2f} ms",
                        )
                    )
                    print(rows[-1][0], rows[-1][1], flush=True)
                finally:
                    gateway.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print("| measurement | figure |")
    print("|---|---|")
    for label, figure in rows:
        print(f"| {label} | {figure} |")


if __name__ == "__main__":
    main()
