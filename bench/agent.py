"""Execution environments (the agent): warm invoke overhead and the two kinds of cold start.

- (a) warm invoke of a no-op Python handler: through the agent (`Environment.invoke`,
  in-process, as dev mode does), versus calling the handler directly in-process, versus a bare
  aiohttp HTTP round trip on loopback (the floor of any agent that talks HTTP);
- (b) cold start from nothing: start an environment (Runtime API + runtime process), specialize
  it and run the first invoke;
- (c) cold start from a warm generic environment: specialize + first invoke (what a request
  pays when the pool has a warm environment of the runtime).

Medians (and p95/p99) over at least 200 runs. Run: `.venv/bin/python -m bench.agent [--runs N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from kubelambda.runtime.bootstrap import LambdaContext
from kubelambda.runtime.provider import ProcessProvider
from kubelambda.runtime.spec import CodeRef, EnvironmentSpec, InvokeRequest

NOOP = "def handler(event, context):\n    return event\n"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:noop"
SPEC = EnvironmentSpec(
    function_name="noop",
    function_arn=ARN,
    runtime="python3.12",
    handler="app.handler",
    code=CodeRef(inline={"app.py": NOOP}),
)


def stats(samples: list[float]) -> dict[str, float]:
    """Milliseconds: p50, p95, p99 of samples in seconds."""
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000

    return {"p50": statistics.median(ordered) * 1000, "p95": pick(0.95), "p99": pick(0.99)}


def request(i: int) -> InvokeRequest:
    return InvokeRequest(request_id=f"bench-{i}", payload=b"{}", invoked_function_arn=ARN)


async def bare_loopback(runs: int) -> list[float]:
    async def answer(req: web.Request) -> web.Response:
        await req.read()
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application()
    app.router.add_post("/", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    samples: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(runs + 50):
            start = time.perf_counter()
            async with session.post(f"http://127.0.0.1:{port}/", data=b"{}") as response:
                await response.read()
            samples.append(time.perf_counter() - start)
    await runner.cleanup()
    return samples[50:]


def direct_call(runs: int) -> list[float]:
    namespace: dict[str, object] = {}
    exec(NOOP, namespace)
    handler = namespace["handler"]
    assert callable(handler)
    samples: list[float] = []
    for i in range(runs):
        start = time.perf_counter()
        context = LambdaContext(f"bench-{i}", int(time.time() * 1000) + 3000, ARN)
        handler({}, context)
        samples.append(time.perf_counter() - start)
    return samples


async def through_agent(provider: ProcessProvider, runs: int) -> list[float]:
    env = await provider.start_environment("python3.12")
    await env.specialize(SPEC)
    samples: list[float] = []
    for i in range(runs + 50):
        req = request(i)
        start = time.perf_counter()
        await env.invoke(req)
        samples.append(time.perf_counter() - start)
    await provider.stop_environment(env)
    return samples[50:]


async def cold_from_nothing(provider: ProcessProvider, runs: int) -> list[float]:
    samples: list[float] = []
    for i in range(runs):
        start = time.perf_counter()
        env = await provider.start_environment("python3.12")
        await env.specialize(SPEC)
        await env.invoke(request(i))
        samples.append(time.perf_counter() - start)
        await provider.stop_environment(env)
    return samples


async def cold_from_warm(
    provider: ProcessProvider, runs: int, batch: int = 20
) -> tuple[list[float], list[float]]:
    """Specialize + first invoke of warm environments started (untimed) beforehand."""
    total: list[float] = []
    specialize_only: list[float] = []
    while len(total) < runs:
        pool = [await provider.start_environment("python3.12") for _ in range(batch)]
        for env in pool:
            start = time.perf_counter()
            await env.specialize(SPEC)
            released = time.perf_counter()
            await env.invoke(request(len(total)))
            done = time.perf_counter()
            specialize_only.append(released - start)
            total.append(done - start)
        await asyncio.gather(*(provider.stop_environment(env) for env in pool))
    return total[:runs], specialize_only[:runs]


def row(name: str, figures: dict[str, float]) -> str:
    return f"| {name} | {figures['p50']:.3f} | {figures['p95']:.3f} | {figures['p99']:.3f} |"


async def run(runs: int, warm_runs: int) -> None:
    provider = ProcessProvider(
        Path(tempfile.mkdtemp(prefix="bench-agent-")), log_sink=lambda _: None
    )
    try:
        bare = stats(await bare_loopback(warm_runs))
        direct = stats(direct_call(warm_runs))
        agent = stats(await through_agent(provider, warm_runs))
        nothing = stats(await cold_from_nothing(provider, runs))
        warm_total, warm_specialize = await cold_from_warm(provider, runs)
        warm = stats(warm_total)
        specialize = stats(warm_specialize)
    finally:
        await provider.stop_all()
    print(f"runs: {warm_runs} warm invokes, {runs} cold starts of each kind (ms)")
    print("| measurement | p50 | p95 | p99 |")
    print("|---|---|---|---|")
    print(row("(a) bare aiohttp loopback round trip (floor)", bare))
    print(row("(a) direct in-process handler call", direct))
    print(row("(a) warm invoke through the agent", agent))
    print(row("(b) cold start from nothing (start + specialize + invoke)", nothing))
    print(row("(c) specialize a warm environment + first invoke", warm))
    print(row("(c) of which specialize() itself", specialize))
    ratio = agent["p50"] / bare["p50"]
    print(f"warm overhead: agent p50 / bare loopback p50 = {ratio:.2f}x (target <= 2x)")
    verdict = "met" if warm["p50"] <= 40 and warm["p95"] <= 80 else "MISSED"
    print(f"specialization target (p50 <= 40 ms, p95 <= 80 ms): {verdict}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200, help="cold starts of each kind")
    parser.add_argument("--warm-runs", type=int, default=2000, help="warm invokes")
    args = parser.parse_args(argv or [])
    asyncio.run(run(args.runs, args.warm_runs))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
