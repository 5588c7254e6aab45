"""kubelambda dev side by side with serverless-offline (on osls), a bare aiohttp floor and an
isolation floor (bench/isolation.py: the bare floor handing each call to a Python child).

`make bench-peer` installs the peer from npm into .tools/peer (scripts/peer-tools.sh) and runs
`python -m bench.peer`. The four systems serve the same Python no-op handler
(`return event`) through Lambda's Invoke API on loopback; every measurement is taken batch by
batch with the systems interleaved (the order rotates), so the machine's other work falls on
all of them alike. The table it prints is the one of bench/README.md ("Side by side"):

- warm p50 / p99: sequential calls from a plain HTTP client (http.client, one connection);
- throughput: no-op invokes/s from 8 and 32 aiohttp clients, median of the batches, and the
  CPU each call cost the system's processes and the client at 8 connections;
- cold start of a new function: its first call (p50 over the bursts' first calls);
- 5 new functions back to back: the first calls of 5 never-called functions in a row, a pause
  between bursts; p90 of each position, the worst position shown;
- first call right after start: the system is started and called the moment it says it is
  ready (`ready:` for kubelambda; for serverless-offline its
  "Offline [http for lambda] listening" line, as it has no HTTP events here).

It skips, saying why, when node/npm or the peer is not installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import (
    NOOP,
    Rate,
    Served,
    cold_burst,
    first_call_after_ready,
    free_port,
    kubelambda_folder,
    median,
    new_names,
    percentile,
    start_kubelambda,
    throughput,
    warm_latency,
)

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / ".tools" / "peer"
SLS = PEER / "node_modules" / "osls" / "bin" / "serverless.js"
SERVICE = "bench"
Handler = Callable[[Any], Awaitable[Any]]  # an aiohttp handler


# -- the floor: a bare aiohttp server answering {} -------------------------------------------


def serve_floor(port: int) -> None:
    from aiohttp import web

    from kubelambda.loop import run_loop

    async def answer(_request: web.Request) -> web.Response:
        return web.Response(body=b"{}", content_type="application/json")

    run_loop(serve_invoke_route(port, answer, "floor ready"))


async def serve_invoke_route(port: int, answer: Handler, ready: str) -> None:
    """A bare aiohttp server with only the Invoke route, until it is asked to stop."""
    from aiohttp import web

    from kubelambda.loop import stop_requested

    app = web.Application()
    app.router.add_post("/2015-03-31/functions/{name}/invocations", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(ready, flush=True)
    await stop_requested().wait()
    await runner.cleanup()


def start_floor() -> Served:
    port = free_port()
    return Served(
        "floor",
        [sys.executable, "-m", "bench.peer", "--serve-floor", str(port)],
        ready="floor ready",
        port=port,
        function=lambda name: name,
        cwd=ROOT,
    )


def start_isolation() -> Served:
    port = free_port()
    return Served(
        "isolation",
        [sys.executable, "-m", "bench.isolation", str(port)],
        ready="isolation floor ready",
        port=port,
        function=lambda name: name,
        cwd=ROOT,
    )


# -- the peer: serverless-offline on osls -----------------------------------------------------


def peer_missing() -> str | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are not installed"
    if not SLS.exists():
        return f"the peer is not installed in {PEER} (make bench-peer installs it)"
    return None


def peer_service(folder: Path, new_functions: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(NOOP)
    lines = [
        f"service: {SERVICE}",
        "frameworkVersion: '3'",
        "provider: {name: aws, runtime: python3.11, stage: dev, region: us-east-1}",
        "plugins: [serverless-offline]",
        "functions:",
    ]
    lines += [f"  {name}: {{handler: app.handler}}" for name in ["noop", *new_functions]]
    (folder / "serverless.yml").write_text("\n".join(lines) + "\n")
    return folder


def start_peer(folder: Path) -> Served:
    http_port, lambda_port = free_port(), free_port()
    env = dict(os.environ)
    # The handler runs on this interpreter, as kubelambda dev's does; nothing phones home.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        SLS_TELEMETRY_DISABLED="1",
        SLS_TRACKING_DISABLED="1",
        SLS_NOTIFICATIONS_MODE="off",
        SLS_DEPRECATION_DISABLE="*",
        SLS_INTERACTIVE_SETUP_DISABLE="1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        CI="1",
    )
    node = shutil.which("node") or "node"
    return Served(
        "serverless-offline",
        [
            node,
            str(SLS),
            "offline",
            "start",
            "--host",
            "127.0.0.1",
            "--httpPort",
            str(http_port),
            "--lambdaPort",
            str(lambda_port),
            "--noPrependStageInUrl",
        ],
        ready=r"Offline \[http for lambda\] listening",
        port=lambda_port,
        function=lambda name: f"{SERVICE}-dev-{name}",
        cwd=folder,
        env=env,
    )


# -- the run ----------------------------------------------------------------------------------


def rotate(items: list[Served], turn: int) -> list[Served]:
    shift = turn % len(items)
    return items[shift:] + items[:shift]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, default=5, help="warm-latency batches (5)")
    parser.add_argument("--calls", type=int, default=300, help="warm calls per batch (300)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per rate batch")
    parser.add_argument("--rate-batches", type=int, default=3, help="throughput batches (3)")
    parser.add_argument("--bursts", type=int, default=8, help="bursts of 5 new functions (8)")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between bursts")
    parser.add_argument("--restarts", type=int, default=4, help="starts per system (4)")
    args = parser.parse_args(argv or [])
    if args.serve_floor:
        serve_floor(args.serve_floor)
        return
    missing = peer_missing()
    if missing is not None:
        print(f"bench.peer: skipped: {missing}")
        return
    work = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    fresh = new_names("new", 5 * args.bursts)
    load_before = os.getloadavg()
    rows, costs = run(args, work, fresh)
    load_after = os.getloadavg()
    print_table(rows)
    print_costs(costs)
    print(
        f"\nload average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
        f"{os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d')}"
    )
    shutil.rmtree(work, ignore_errors=True)


# name, floor, isolation floor, peer, kl, unit
Row = tuple[str, float | None, float | None, float | None, float | None, str]


def run(
    args: argparse.Namespace, work: Path, fresh: list[str]
) -> tuple[list[Row], dict[str, list[Rate]]]:
    kl_folder = kubelambda_folder(work / "kl", fresh)
    peer_folder = peer_service(work / "peer", fresh)
    floor = start_floor()
    isolation = start_isolation()
    peer = start_peer(peer_folder)
    kl = start_kubelambda(kl_folder, log=work / "kl.log")
    systems = [floor, isolation, peer, kl]
    try:
        latency: dict[str, list[float]] = {s.name: [] for s in systems}
        for turn in range(args.batches):
            for system in rotate(systems, turn):
                latency[system.name] += warm_latency(system, args.calls)
        rates: dict[tuple[str, int], list[float]] = {}
        costs: dict[str, list[Rate]] = {}
        for connections in (8, 32):
            for turn in range(args.rate_batches):
                for system in rotate(systems, turn):
                    batch = throughput(system, connections, args.seconds)
                    rates.setdefault((system.name, connections), []).append(batch.per_second)
                    if connections == 8:
                        costs.setdefault(system.name, []).append(batch)
        bursts: dict[str, list[list[float]]] = {peer.name: [], kl.name: []}
        for burst in range(args.bursts):
            names = fresh[5 * burst : 5 * burst + 5]
            for system in rotate([peer, kl], burst):
                bursts[system.name].append(cold_burst(system, names))
            time.sleep(args.pause)  # a developer's pause between bursts; the pools top up
    finally:
        for system in systems:
            system.stop()
    first: dict[str, list[float]] = {peer.name: [], kl.name: []}
    starters: list[tuple[str, Callable[[], Served]]] = [
        (peer.name, lambda: start_peer(peer_folder)),
        (kl.name, lambda: start_kubelambda(kl_folder)),
    ]
    for turn in range(args.restarts):
        for name, start in starters[turn % 2 :] + starters[: turn % 2]:
            system = start()
            try:
                first[name].append(first_call_after_ready(system))
            finally:
                system.stop()

    def ms(values: list[float], q: float) -> float:
        return percentile(values, q) * 1000

    def rate(name: str, connections: int) -> float:
        return median(rates[(name, connections)])

    def worst_position_p90(name: str) -> float:
        runs = bursts[name]
        return max(ms([run[i] for run in runs], 0.9) for i in range(5))

    def each(figure: Callable[[str], float]) -> tuple[float, float, float, float]:
        return figure(floor.name), figure(isolation.name), figure(peer.name), figure(kl.name)

    rows: list[Row] = [
        ("warm p50, plain HTTP client", *each(lambda n: ms(latency[n], 0.5)), "ms"),
        ("warm p99, plain HTTP client", *each(lambda n: ms(latency[n], 0.99)), "ms"),
        ("no-op throughput, 8 connections", *each(lambda n: rate(n, 8)), "/s"),
        ("no-op throughput, 32 connections", *each(lambda n: rate(n, 32)), "/s"),
        (
            "cold start, first call of a new function, p50",
            None,
            None,
            ms([r[0] for r in bursts[peer.name]], 0.5),
            ms([r[0] for r in bursts[kl.name]], 0.5),
            "ms",
        ),
        (
            "5 new functions back to back, p90 of the worst position",
            None,
            None,
            worst_position_p90(peer.name),
            worst_position_p90(kl.name),
            "ms",
        ),
        (
            "first call right after start (ready printed), p50",
            None,
            None,
            ms(first[peer.name], 0.5),
            ms(first[kl.name], 0.5),
            "ms",
        ),
    ]
    return rows, costs


def print_table(rows: list[Row]) -> None:
    def cell(value: float | None, unit: str) -> str:
        if value is None:
            return ""
        return f"{value:,.0f}/s" if unit == "/s" else f"{value:.2f} ms"

    print(
        "| figure | bare aiohttp floor | isolation floor | serverless-offline | kubelambda dev "
        "| kl / peer | isolation / peer |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, floor, isolation, peer, kl, unit in rows:
        ratio = f"{kl / peer:.2f}" if kl is not None and peer else ""
        bound = f"{isolation / peer:.2f}" if isolation is not None and peer else ""
        cells = " | ".join(cell(v, unit) for v in (floor, isolation, peer, kl))
        print(f"| {name} | {cells} | {ratio} | {bound} |")
    warm = rows[0]
    if warm[1] and warm[2] and warm[4]:
        print(
            f"\nwarm p50 / bare floor: kubelambda {warm[4] / warm[1]:.2f}, "
            f"isolation floor {warm[2] / warm[1]:.2f}"
        )


def print_costs(costs: dict[str, list[Rate]]) -> None:
    """CPU per call in the 8-connection batches (medians): what bounds the throughput rows."""
    print("\nCPU per call at 8 connections (median of the batches):")
    for name, batches in costs.items():
        commands = sorted({c for b in batches for c in b.server_ms})
        each = {c: median([b.server_ms.get(c, 0.0) for b in batches]) for c in commands}
        server = median([sum(b.server_ms.values()) for b in batches])
        shown = sorted(((ms, c) for c, ms in each.items() if ms >= 0.0005), reverse=True)
        parts = ", ".join(f"{c} {ms:.3f}" for ms, c in shown)
        client = median([b.client_ms for b in batches])
        print(f"  {name}: server {server:.3f} ms ({parts}); aiohttp client {client:.3f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
