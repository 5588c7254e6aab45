"""Warm invoke latency through the gateway, and throughput with 8 warm environments.

Three measurements of the same no-op Python function, each the median (and p99) of sequential
calls on one keep-alive connection:

- **bare**: an aiohttp server answering `{}` on loopback: the floor of one HTTP round trip;
- **agent**: `Environment.invoke` called in-process (what the gateway itself does in dev mode);
- **gateway**: boto3's wire format through `kubelambda dev` (a separate process), end to end.

Then cold starts through `kubelambda dev` with its default warm pool: bursts of 5 never-called
functions back to back (p50 / p90 of each position), and the first call the moment `ready:`
is printed.

Run: `.venv/bin/python -m bench.gateway [--calls N] [--bursts N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.agent import bare_loopback
from bench.common import (
    cold_burst,
    first_call_after_ready,
    kubelambda_folder,
    new_names,
    percentile,
    start_kubelambda,
)
from kubelambda.runtime.provider import ProcessProvider
from kubelambda.runtime.spec import CodeRef, EnvironmentSpec, InvokeRequest

NOOP = "def handler(event, context):\n    return event\n"
MANIFEST = """\
apiVersion: kubelambda.dev/v1alpha1
kind: Function
metadata: {name: noop}
spec:
  runtime: python3.11
  handler: app.handler
  code: {inline: {app.py: "def handler(event, context):\\n    return event\\n"}}
"""


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000


async def agent_direct(calls: int) -> list[float]:
    provider = ProcessProvider(
        Path(tempfile.mkdtemp(prefix="bench-agent-")), log_sink=lambda _: None
    )
    env = await provider.start_environment("python3.11")
    await env.specialize(
        EnvironmentSpec(
            function_name="noop",
            function_arn="arn:aws:lambda:us-east-1:000000000000:function:noop",
            runtime="python3.11",
            handler="app.handler",
            code=CodeRef(inline={"app.py": NOOP}),
        )
    )
    samples: list[float] = []
    try:
        for i in range(calls + 20):
            request = InvokeRequest(
                request_id=f"r{i}",
                payload=b"{}",
                invoked_function_arn="arn:aws:lambda:::function:noop",
            )
            start = time.perf_counter()
            await env.invoke(request)
            samples.append(time.perf_counter() - start)
    finally:
        await provider.stop_all()
    return samples[20:]


class Gateway:
    """`kubelambda dev` serving the no-op function on a free port, with `flags` added."""

    def __init__(self, *flags: str, prefix: str = "bench-gw-") -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=prefix))
        (self.folder / "noop.yaml").write_text(MANIFEST)
        self.log = self.folder / "dev.log"
        kubelambda = str(Path(sys.executable).parent / "kubelambda")
        self.proc = subprocess.Popen(
            [kubelambda, "dev", str(self.folder), "--port", "0", "--no-reload", *flags],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = re.search(r"--endpoint-url (\S+)", self.log.read_text())
            if found:
                self.url = f"{found.group(1)}/2015-03-31/functions/noop/invocations"
                return
            time.sleep(0.05)
        raise RuntimeError(self.log.read_text())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def through_gateway(url: str, calls: int) -> list[float]:
    samples: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(calls + 20):
            start = time.perf_counter()
            async with session.post(url, data=b"{}") as response:
                await response.read()
                assert response.status == 200
            samples.append(time.perf_counter() - start)
    return samples[20:]


def wrk_throughput(url: str, concurrency: int, seconds: float) -> float | None:
    """Requests/s from wrk (a C load generator), which leaves the gateway most of the CPU."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = Path(tempfile.mkdtemp(prefix="bench-wrk-")) / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.body = "{}"\n')
    base = [wrk, "-t1", f"-c{concurrency}", "-s", str(script)]
    subprocess.run([*base, "-d2s", url], capture_output=True, check=True)  # warm environments
    out = subprocess.run(
        [*base, f"-d{seconds:g}s", url], capture_output=True, text=True, check=True
    )
    found = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    return float(found.group(1)) if found else None


async def throughput(url: str, concurrency: int, seconds: float) -> float:
    done = 0

    async def worker(session: aiohttp.ClientSession, deadline: float) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with session.post(url, data=b"{}") as response:
                await response.read()
            done += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm up: make sure `concurrency` environments exist before measuring.
        await asyncio.gather(
            *(worker(session, time.perf_counter() + 1.0) for _ in range(concurrency))
        )
        done = 0
        start = time.perf_counter()
        await asyncio.gather(*(worker(session, start + seconds) for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


def cold_starts(bursts: int, pause: float, starts: int) -> None:
    """Back-to-back new functions and the first call after `ready:`, through kubelambda dev."""
    names = new_names("new", 5 * bursts)
    folder = kubelambda_folder(Path(tempfile.mkdtemp(prefix="bench-cold-")) / "fns", names)
    system = start_kubelambda(folder)
    runs: list[list[float]] = []
    try:
        for burst in range(bursts):
            time.sleep(pause)  # the pool tops up between bursts, as between a developer's tries
            runs.append(cold_burst(system, names[5 * burst : 5 * burst + 5]))
    finally:
        system.stop()
    print(f"cold starts through kubelambda dev, {bursts} bursts of 5 new functions back to back:")
    for position in range(5):
        samples = [run[position] for run in runs]
        print(
            f"  new function {position + 1} of 5: p50 {percentile(samples, 0.5) * 1000:6.2f} ms"
            f"   p90 {percentile(samples, 0.9) * 1000:6.2f} ms"
        )
    first = []
    for _ in range(starts):
        system = start_kubelambda(folder)
        try:
            first.append(first_call_after_ready(system))
        finally:
            system.stop()
    print(
        f"first call right after `ready:` ({starts} starts): "
        f"p50 {percentile(first, 0.5) * 1000:.2f} ms, max {max(first) * 1000:.2f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--bursts", type=int, default=10, help="bursts of 5 new functions")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds before each burst")
    parser.add_argument("--starts", type=int, default=5, help="starts for the first call")
    args = parser.parse_args(argv or [])
    bare = summary(asyncio.run(bare_loopback(args.calls)))
    agent = summary(asyncio.run(agent_direct(args.calls)))
    gateway = Gateway()
    try:
        through = summary(asyncio.run(through_gateway(gateway.url, args.calls)))
        rate = asyncio.run(throughput(gateway.url, 8, args.seconds))
        wrk_rate = wrk_throughput(gateway.url, 8, args.seconds)
    finally:
        gateway.stop()
    print(f"{'path':<40} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (p50, p99) in (
        ("bare loopback HTTP round trip", bare),
        ("agent, in-process (Environment.invoke)", agent),
        ("gateway end to end (kubelambda dev)", through),
    ):
        print(f"{name:<40} {p50:>8.3f} {p99:>8.3f}")
    print(f"gateway overhead over the agent (p50): {through[0] - agent[0]:.3f} ms")
    print(f"throughput, 8 concurrent aiohttp clients (same machine), warm: {rate:,.0f} invokes/s")
    if wrk_rate is not None:
        print(f"throughput, wrk with 8 connections, warm: {wrk_rate:,.0f} invokes/s")
    else:
        print("throughput with wrk: skipped, wrk is not installed (make bench installs it)")
    cold_starts(args.bursts, args.pause, args.starts)


if __name__ == "__main__":
    main(sys.argv[1:])
