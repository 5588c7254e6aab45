"""The shared concurrency ledger: what it adds to a warm invoke, and how fast it rebalances.

1. Warm invoke p50 through the cluster path, on the real control plane of `tests/cluster`: one
   gateway admitting alone (`gw-a`) against a replica of two that share the ledger (`gw-b`,
   with `gw-c` beside it), on the same function (reservedConcurrency 10), in alternating
   batches so load drifts hit both alike; each call on a new connection, timed by a client in
   its own process (`bench.caller`).
2. The hot path alone: `SharedLedger.take` + `put` in a tight loop (no I/O).
3. Rebalancing: three `SharedLedger`s (each its own API client) on the real apiserver share a
   bucket of 10 under spread traffic; then all traffic moves to one. The time until that one
   may use 9 of the 10 (90 %) is measured from the move, over `--shifts` runs.

Run: `.venv/bin/python -m bench.ledger [--calls N] [--shifts N]`. Print `uptime` beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import timeit
from pathlib import Path

from bench.caller import Caller
from bench.cluster import percentile
from kubelambda.gateway.ledger.sync import SharedLedger
from kubelambda.kube.client import KubeApi
from kubelambda.kube.leases import LeaseStore
from tests.cluster.conftest import crd_documents, install_crds
from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.controlplane import REPO
from tests.cluster.lambda_stack import handler_code, running_stack

BUCKET, CAP, SERVED = "fn/f", 10, "team"


def warm_path(cluster: Cluster, workdir: Path, calls: int) -> dict[str, list[float]]:
    with running_stack(cluster, workdir, warm=3) as stack:
        stack.ledger = True  # gw-a started alone; the next two share the ledger
        stack.start_gateway("gw-b")
        stack.start_gateway("gw-c")
        stack.function("warm", handler_code("event"), reservedConcurrency=CAP)
        stack.wait_state("functions", "warm", "Active", timeout=60)
        stack.wait_servable("warm")
        urls = {"alone": stack.gateways["gw-a"][1], "ledger": stack.gateways["gw-b"][1]}
        callers = {key: Caller(url) for key, url in urls.items()}
        try:
            for caller in callers.values():
                caller.fresh("warm", 20)  # claim a pod and warm the gateway's connections
            samples: dict[str, list[float]] = {k: [] for k in urls}
            while min(len(v) for v in samples.values()) < calls:
                for key, caller in callers.items():
                    samples[key] += caller.fresh("warm", 50)
            return samples
        finally:
            for caller in callers.values():
                caller.close()


def hot_path() -> float:
    """Nanoseconds per take + put (the only ledger work on a warm invoke)."""
    ledger = SharedLedger(LeaseStore(KubeApi("http://127.0.0.1:1"), "x"), "me", dict)
    ledger.take(SERVED, BUCKET)  # make the share
    ledger.shares[SERVED].held[BUCKET] = 1000
    ledger.shares[SERVED].busy[BUCKET] = 0

    def one() -> None:
        ledger.take(SERVED, BUCKET)
        ledger.put(SERVED, BUCKET)

    runs = 200_000
    return min(timeit.repeat(one, number=runs, repeat=5)) / runs * 1e9


async def shifts(cluster: Cluster, namespace: str, count: int) -> list[float]:
    assert cluster.control.pki is not None
    context = cluster.control.ssl_context(cluster.control.pki.admin)
    apis = [KubeApi(cluster.url, ssl_context=context) for _ in range(3)]
    caps = {SERVED: {BUCKET: CAP}}
    ledgers = [
        SharedLedger(LeaseStore(api, namespace), f"gw-{i}", lambda: caps, interval=0.2)
        for i, api in enumerate(apis)
    ]
    demand = [34, 33, 33]

    async def replica(i: int) -> None:
        ledger = ledgers[i]
        while True:
            await ledger.round()
            share = ledger.shares.get(SERVED)
            if share is not None:
                share.busy[BUCKET] = 0  # short calls: those in flight end, callers try again
                for _ in range(demand[i]):
                    ledger.take(SERVED, BUCKET)
            await asyncio.sleep(ledger.interval)

    tasks = [asyncio.create_task(replica(i)) for i in range(3)]
    took: list[float] = []
    try:
        for run in range(count):
            target = run % 3
            demand[:] = [34, 33, 33]
            settle = time.monotonic() + 30
            while not all(ledger.held(SERVED, BUCKET) >= 2 for ledger in ledgers):
                assert time.monotonic() < settle, "the spread never settled"
                await asyncio.sleep(0.02)
            demand[:] = [0, 0, 0]
            demand[target] = 100
            moved = time.monotonic()
            while ledgers[target].held(SERVED, BUCKET) < 9:
                assert time.monotonic() - moved < 30, "never reached 90 %"
                await asyncio.sleep(0.01)
            took.append(time.monotonic() - moved)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for api in apis:
            await api.close()
    return took


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=400, help="warm calls per gateway (400)")
    parser.add_argument("--shifts", type=int, default=15, help="traffic shifts to time (15)")
    args = parser.parse_args(argv)
    print(f"hot path: take + put {hot_path():.0f} ns")
    with (
        tempfile.TemporaryDirectory(prefix="kubelambda-bench-") as tmp,
        Cluster(Path(tmp) / "cluster") as cluster,
    ):
        assert cluster.client is not None
        install_crds(cluster.client, crd_documents(REPO / "crds"))
        samples = warm_path(cluster, Path(tmp) / "stack", args.calls)
        namespace = cluster.new_namespace("ledger-bench")
        took = asyncio.run(shifts(cluster, namespace, args.shifts))
    print(f"{'measurement':<58} {'n':>4} {'p50':>9} {'p95':>9}")
    for label, key in (
        ("warm invoke, gateway alone", "alone"),
        ("warm invoke, 1 of 2 sharing the ledger", "ledger"),
    ):
        values = samples[key]
        p50, p95 = statistics.median(values), percentile(values, 0.95)
        print(f"{label:<58} {len(values):>4} {p50:>7.2f}ms {p95:>7.2f}ms")
    p50, p95 = statistics.median(took), percentile(took, 0.95)
    print(
        f"{'traffic moves to one of 3: it may use 90 % of 10':<58} {len(took):>4} "
        f"{p50:>8.2f}s {p95:>8.2f}s"
    )


if __name__ == "__main__":
    main()
