"""Records per second through a poller to a no-op function, at batchSize 100, per broker.

Each broker is a real server on loopback (as in tests/component/sources); a backlog of N
records is produced first, then `kubelambda poll` starts, and the clock runs until the
poller's `kubelambda_esm_records_delivered_total` reaches N. Gateway: `kubelambda dev`.
Two rates: from the poller's start (process start, imports and broker connection included)
and in steady state, from its first delivered batch to the last record. The poller's own CPU
time per record in steady state is printed too, the broker's beside it, and the load average
at the end of each run: on a shared 2-core machine the rates follow the machine's load, the
CPU cost much less.
Run: `python -m bench.sources [redis nats kafka rabbitmq sqs]`.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.component.asyncq.servers import KubelambdaDev, free_port, wait_until
from tests.component.sources.conftest import KUBELAMBDA
from tests.component.sources.kinds import KINDS

COUNTS = {"redis": 20_000, "nats": 20_000, "kafka": 20_000, "rabbitmq": 5_000, "sqs": 6_000}
NOOP = "def handler(event, context):\n    return None\n"


def delivered(port: int) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError:
        return 0.0
    found = re.findall(
        r"^kubelambda_esm_records_delivered_total\{[^}]*\} (\S+)", text.decode(), re.M
    )
    return sum(float(v) for v in found)


def one(name: str, root: Path, dev: KubelambdaDev) -> tuple[float, float, float, float]:
    """(records/s from the start, records/s in steady state, and the poller's and the
    broker's CPU µs per record then)."""
    import subprocess

    import psutil

    from tests.component.sources.conftest import broker

    kind = KINDS[name]
    server = broker(SERVERS, name, Factory(root))
    run = f"bench{name}"
    kind.create(server, run)
    total = COUNTS[name]
    kind.produce(server, run, [{"run": run, "n": n} for n in range(total)])
    spec = {"functionName": "noop", **kind.spec(server, run), "batchSize": 100}
    if name == "sqs":
        spec["maximumBatchingWindowInSeconds"] = 1
        spec["scalingConfig"] = {"maximumConcurrency": 10}
    folder = root / run
    folder.mkdir()
    doc = {
        "apiVersion": "kubelambda.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": run},
        "spec": spec,
    }
    (folder / "m.yaml").write_text(yaml.safe_dump(doc))
    port = free_port()
    log = (root / f"{run}.log").open("w")
    started = time.monotonic()
    proc = subprocess.Popen(
        [KUBELAMBDA, "poll", str(folder), "--gateway", dev.url, "--metrics-port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**__import__("os").environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"},
    )
    try:
        poller = psutil.Process(proc.pid)
        broker_proc = psutil.Process(server.proc.pid)
        brokers = [broker_proc, *broker_proc.children(recursive=True)]  # RabbitMQ: its BEAM
        wait_until(lambda: delivered(port) > 0, 120, f"the first {name} batch", 0.02)
        first, first_at, first_cpu = delivered(port), time.monotonic(), cpu_seconds(poller)
        first_broker = sum(cpu_seconds(b) for b in brokers)
        wait_until(lambda: delivered(port) >= total, 600, f"{total} {name} records", 0.1)
        ended = time.monotonic()
        cpu = cpu_seconds(poller) - first_cpu
        broker_cpu = sum(cpu_seconds(b) for b in brokers) - first_broker
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    steady = total - first
    rates = total / (ended - started), steady / (ended - first_at)
    return (*rates, cpu / steady * 1e6, broker_cpu / steady * 1e6)


def cpu_seconds(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


class Factory:
    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, basename: str, /) -> Path:
        path = self.root / f"srv-{basename}"
        path.mkdir()
        return path


SERVERS: dict[str, object] = {}


def main(names: list[str] | None = None) -> None:
    names = names or list(COUNTS)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fns = root / "fns"
        (fns / "noop").mkdir(parents=True)
        (fns / "noop" / "app.py").write_text(NOOP)
        doc = {
            "apiVersion": "kubelambda.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "noop"},
            "spec": {"runtime": "python3.11", "handler": "app.handler", "code": {"path": "./noop"}},
        }
        (fns / "noop.yaml").write_text(yaml.safe_dump(doc))
        dev = KubelambdaDev(fns, "--warm-per-runtime", "4")
        try:
            head = f"{'broker':<10} {'records':>8} {'from start/s':>13} {'steady/s':>9}"
            print(f"{head} {'µs CPU':>7} {'broker µs':>9}  load average")
            for name in names:
                rate, steady, cpu, broker_cpu = one(name, root, dev)
                line = f"{name:<10} {COUNTS[name]:>8} {rate:>13.0f} {steady:>9.0f} {cpu:>7.0f}"
                load = " ".join(f"{v:.1f}" for v in os.getloadavg())
                print(f"{line} {broker_cpu:>9.0f}  {load}", flush=True)
        finally:
            dev.stop()
            for server in SERVERS.values():
                server.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1:] or None)
