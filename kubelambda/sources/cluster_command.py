"""`kubelambda poller`: the cluster's poller Deployment; each replica owns a fair share.

Every `--renew` seconds a replica renews its presence, lists the mappings and the Leases,
asks `leases.plan()` what to take, keep and drop, does it through preconditioned Lease
writes, and applies the result to its `PollerSet`. A replica that dies stops renewing; its
presence and mapping Leases expire after `--lease-seconds` and the others take its mappings
over (within lease + renew seconds, 13 s by default).
"""

from __future__ import annotations

import argparse
import os
import socket

DESCRIPTION = __doc__


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--gateway",
        default=os.environ.get("KUBELAMBDA_GATEWAY_URL"),
        metavar="URL",
        help="the gateway's URL ($KUBELAMBDA_GATEWAY_URL; the chart sets the Service's)",
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="where the Leases live (the release's namespace; $POD_NAMESPACE)",
    )
    parser.add_argument(
        "--identity",
        default=os.environ.get("POD_NAME", socket.gethostname()),
        help="this replica's name in the Leases ($POD_NAME)",
    )
    parser.add_argument(
        "--watch-namespace",
        action="append",
        default=[],
        metavar="NS",
        help="read mappings in NS only (repeatable; default: all namespaces)",
    )
    parser.add_argument("--lease-seconds", type=int, default=10, help="Lease duration (10)")
    parser.add_argument("--renew", type=float, default=3.0, help="seconds between rounds (3)")
    parser.add_argument("--region", default="us-east-1", help="region in ARNs (us-east-1)")
    parser.add_argument("--metrics-host", default="0.0.0.0", help="/metrics address (0.0.0.0)")
    parser.add_argument("--metrics-port", type=int, default=9090, help="/metrics port (9090)")
    parser.add_argument("--token-file", help="a bearer token file for the gateway (optional)")
    parser.add_argument(
        "--sigv4-keys",
        help="a gateway keys file (keys.yaml of its SigV4 Secret): calls are signed with the "
        "first key (optional; --token-file wins)",
    )
    parser.add_argument(
        "--nats-url", default="nats://127.0.0.1:4222", help="server for NATS destinations"
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal
    import time
    from pathlib import Path
    from typing import Any

    from kubelambda.loop import run_loop
    from kubelambda.sources import leases
    from kubelambda.sources.cluster import (
        Cluster,
        configs_from,
        lease_name,
        lease_role,
        lease_view,
        presence_name,
    )
    from kubelambda.sources.config import PollerConfig
    from kubelambda.sources.credentials import CredentialsError, read_sigv4_key
    from kubelambda.sources.invoke import GatewayInvoker
    from kubelambda.sources.metrics import SourceMetrics
    from kubelambda.sources.runner import PollerSet, PollerStatus
    from kubelambda.sources.serve import serve_metrics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log = logging.getLogger("kubelambda.poller")

    import sys

    if not args.gateway:
        print(
            "kubelambda poller: --gateway URL or $KUBELAMBDA_GATEWAY_URL is required",
            file=sys.stderr,
        )
        return 2

    try:
        signed = read_sigv4_key(Path(args.sigv4_keys), args.region) if args.sigv4_keys else None
    except CredentialsError as exc:
        print(f"kubelambda poller: {exc}", file=sys.stderr)
        return 2

    async def serve() -> int:
        cluster = Cluster(args.namespace, args.identity, args.lease_seconds, args.watch_namespace)
        metrics = SourceMetrics()
        token = Path(args.token_file) if args.token_file else None
        invoker = GatewayInvoker(
            args.gateway, token_file=token, credentials=None if token else signed
        )
        loop = asyncio.get_running_loop()

        writes: set[asyncio.Task[None]] = set()  # status patches in flight, kept referenced

        def on_status(config: PollerConfig, status: PollerStatus) -> None:
            body = {**status.as_status(), "sourceType": config.kind, "uuid": config.uid}
            task = loop.create_task(cluster.write_status(config.namespace, config.name, body))
            writes.add(task)
            task.add_done_callback(writes.discard)

        async def credentials(config: PollerConfig) -> dict[str, str]:
            source = getattr(config.spec.source, config.kind)
            name = getattr(source, "credentials_secret", None)
            return await cluster.secret(config.namespace, name) if name else {}

        class LeaseState:
            def __init__(self, config: PollerConfig) -> None:
                self.name = lease_name(config)

            async def load(self) -> dict[str, Any]:
                return await cluster.lease_state(self.name)

            async def save(self, values: dict[str, Any]) -> None:
                await cluster.annotate(self.name, values)

        pollers = PollerSet(
            invoker,
            metrics,
            region=args.region,
            credentials=credentials,
            on_status=on_status,
            nats_url=args.nats_url,
            state_for=LeaseState,
        )
        rounds = 0  # rounds that reached the API server; /readyz waits for the first

        runner = await serve_metrics(
            metrics.registry, args.metrics_host, args.metrics_port, ready=lambda: rounds > 0
        )
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        held: dict[str, PollerConfig] = {}
        me = args.identity
        log.info("poller %s: leases in %s", me, args.namespace)
        while not stop.is_set():
            try:
                now = time.time()
                all_leases = await cluster.leases()
                mine = presence_name(me)
                await cluster.hold(mine, "presence", all_leases.get(mine), now, me)
                objects = await cluster.mappings()
                configs, problems = configs_from(objects)
                for line in problems:
                    log.warning("mapping not polled: %s", line)
                presence = {
                    str(lease_view(lease).holder): lease_view(lease)
                    for lease in all_leases.values()
                    if lease_role(lease) == "presence"
                }
                views = {
                    key: lease_view(all_leases[lease_name(c)])
                    for key, c in configs.items()
                    if lease_name(c) in all_leases
                }
                step = leases.plan(
                    me, leases.alive(presence, now), configs, views, held.keys(), now
                )
                for key in step.drop:
                    old = held.pop(key, None)
                    if old is not None:
                        await pollers.apply(list(held.values()))
                        lease = all_leases.get(lease_name(old))
                        if lease is not None and lease_view(lease).holder == me:
                            await cluster.hold(lease_name(old), "mapping", lease, now, None)
                for key in step.renew + step.take:
                    config = configs[key]
                    name = lease_name(config)
                    if await cluster.hold(name, "mapping", all_leases.get(name), now, me):
                        held[key] = config
                    else:
                        held.pop(key, None)
                await pollers.apply(list(held.values()))
                rounds += 1
            except Exception as exc:  # the API server away: keep polling what we hold
                log.warning("poller round failed: %s", type(exc).__name__)
            with_timeout = asyncio.ensure_future(stop.wait())
            await asyncio.wait([with_timeout], timeout=args.renew)
            with_timeout.cancel()
        await pollers.close()
        for config in held.values():  # hand the mappings over at once
            try:
                lease = (await cluster.leases()).get(lease_name(config))
                if lease is not None:
                    await cluster.hold(lease_name(config), "mapping", lease, time.time(), None)
            except Exception as exc:
                log.warning("release failed: %s", type(exc).__name__)
        await invoker.close()
        await cluster.close()
        await runner.cleanup()
        return 0

    return run_loop(serve())
