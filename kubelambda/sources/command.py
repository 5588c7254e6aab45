"""`kubelambda poll DIR --gateway URL`: poll a folder's EventSourceMappings, with no cluster.

The pollers invoke through the given gateway (a `kubelambda dev` or a cluster's), so
admission stays one ledger. SIGHUP re-reads the folder; changed mappings restart, disabled
ones stop and keep their position. `kubelambda dev` runs the same pollers in-process.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubelambda.sources.config import PollerConfig

DESCRIPTION = """\
Poll every EventSourceMapping found in DIR (recursively) and invoke its function through the
gateway at --gateway. Positions (offsets, pending entries, durable consumers) live in the
brokers; schedule state lives in --state-dir. Send SIGHUP to reload the manifests.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("folder", metavar="DIR", type=Path, help="folder of manifests")
    parser.add_argument("--gateway", required=True, metavar="URL", help="the gateway's URL")
    parser.add_argument("--state-dir", type=Path, help="schedule state (default DIR/.kubelambda)")
    parser.add_argument("--region", default="us-east-1", help="region in ARNs (us-east-1)")
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="serve /metrics on 127.0.0.1:PORT (off)"
    )
    parser.add_argument(
        "--nats-url", default="nats://127.0.0.1:4222", help="server for NATS destinations"
    )


def load_configs(folder: Path) -> list[PollerConfig]:
    from kubelambda.api.manifests import read_paths
    from kubelambda.api.resources import EventSourceMapping
    from kubelambda.sources.config import ConfigError, poller_config

    reading = read_paths([folder])
    reading.raise_problems()
    out: list[PollerConfig] = []
    for document in reading.documents:
        res = document.resource
        if isinstance(res, EventSourceMapping):
            try:
                out.append(poller_config(res))
            except ConfigError as exc:
                print(f"  ! EventSourceMapping {res.namespace}/{res.name}: {exc}", flush=True)
    return out


def run(args: argparse.Namespace) -> int:
    import asyncio
    import signal
    import sys

    from kubelambda.api.resources import ManifestError
    from kubelambda.loop import run_loop
    from kubelambda.sources.invoke import GatewayInvoker
    from kubelambda.sources.metrics import SourceMetrics
    from kubelambda.sources.runner import PollerSet

    folder: Path = args.folder
    if not folder.is_dir():
        print(f"kubelambda poll: {folder} is not a folder", file=sys.stderr)
        return 2

    def configs() -> list[PollerConfig]:
        return load_configs(folder)

    async def serve() -> int:
        try:
            initial = configs()
        except ManifestError as exc:
            print("kubelambda poll: the manifests are invalid:", file=sys.stderr)
            for line in exc.problems:
                print(f"  {line}", file=sys.stderr)
            return 1
        metrics = SourceMetrics()
        invoker = GatewayInvoker(args.gateway)
        state = args.state_dir or folder / ".kubelambda"
        pollers = PollerSet(
            invoker,
            metrics,
            region=args.region,
            state_dir=state / "sources",
            nats_url=args.nats_url,
            on_status=lambda c, s: print(f"{c.key}: {s.state} ({s.last_result})", flush=True),
        )
        runner = None
        if args.metrics_port:
            from kubelambda.sources.serve import serve_metrics

            runner = await serve_metrics(metrics.registry, "127.0.0.1", args.metrics_port)
        await pollers.apply(initial)
        print(f"polling: {len(initial)} mapping(s) from {folder}", flush=True)
        stop = asyncio.Event()
        reload = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload.set)
        while not stop.is_set():
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(reload.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if reload.is_set():
                reload.clear()
                try:
                    await pollers.apply(configs())
                    print("reloaded", flush=True)
                except ManifestError as exc:
                    print(f"reload refused: {'; '.join(exc.problems)}", flush=True)
        await pollers.close()
        await invoker.close()
        if runner is not None:
            await runner.cleanup()
        return 0

    return run_loop(serve())
