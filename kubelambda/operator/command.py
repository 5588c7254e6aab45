"""`kubelambda operator`: run the kopf operator (reconcilers and the pool keeper).

Flags are the ones the Helm chart passes (see operator/README.md); `RUNTIME=VALUE` flags repeat.
Heavy imports (kopf) happen in `run()`, so `kubelambda --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from kubelambda.api.common import DEFAULT_REGION
from kubelambda.serving.urls import add_url_flags, url_domain


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Reconcile Functions, Versions and Aliases into status and warm-pool pods. The only "
        "component that creates or deletes pods."
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        dest="namespaces",
        action="append",
        default=[],
        metavar="NS",
        help="a namespace to serve (repeatable)",
    )
    scope.add_argument("--all-namespaces", action="store_true", help="serve every namespace")
    peering = parser.add_mutually_exclusive_group()
    peering.add_argument("--standalone", action="store_true", help="one replica, no election")
    peering.add_argument(
        "--leader-election",
        default=None,
        metavar="LEASE",
        help="elect one leader among replicas with this coordination.k8s.io Lease; the others "
        "stand by",
    )
    parser.add_argument(
        "--leader-election-namespace",
        default=None,
        metavar="NS",
        help="the Lease's namespace (default: $POD_NAMESPACE)",
    )
    parser.add_argument(
        "--lease-duration",
        type=float,
        default=8.0,
        help="seconds an unrenewed Lease lives; a standby takes over after it (8)",
    )
    parser.add_argument(
        "--release-namespace",
        default=None,
        metavar="NS",
        help="the operator's own namespace, which never serves functions (default: $POD_NAMESPACE)",
    )
    parser.add_argument(
        "--pod-owner-clusterrole",
        default=None,
        metavar="NAME",
        help="a ClusterRole of the release that owns every generic warm pod, so the garbage "
        "collector removes them when the release is uninstalled",
    )
    parser.add_argument("--agent-image", required=True, help="the kubelambda image (agent)")
    parser.add_argument(
        "--runtime-image",
        action="append",
        default=[],
        metavar="RUNTIME=IMAGE",
        help="the official base image of a runtime (repeatable; recorded on its pods)",
    )
    parser.add_argument(
        "--warm-pool",
        action="append",
        default=[],
        metavar="RUNTIME=N",
        help="generic warm pods per runtime in each served namespace (repeatable)",
    )
    parser.add_argument("--idle-keepalive", type=float, default=300.0, help="seconds (300)")
    parser.add_argument("--max-age", type=float, default=7200.0, help="seconds (7200)")
    parser.add_argument(
        "--liveness-port", type=int, default=8080, help="port of /healthz (0: none)"
    )
    parser.add_argument("--liveness-host", default="0.0.0.0", help="address of /healthz")
    parser.add_argument(
        "--claim-lease", type=float, default=60.0, help="seconds an unrenewed claim lives (60)"
    )
    parser.add_argument(
        "--start-timeout", type=float, default=120.0, help="seconds for a pod to be Ready (120)"
    )
    parser.add_argument(
        "--refill-delay",
        type=float,
        default=0.5,
        help="seconds a warm pool waits after a claim before it is topped up, so the new pod "
        "does not start during that cold start; 0: at once (0.5)",
    )
    parser.add_argument(
        "--refill-floor",
        type=int,
        default=1,
        help="a pool with fewer free Ready pods than this is topped up at once (1)",
    )
    parser.add_argument(
        "--generic-memory", type=int, default=512, help="MB of each generic warm pod (512)"
    )
    parser.add_argument(
        "--generic-ephemeral-storage",
        type=int,
        default=512,
        help="MB of /tmp of each generic warm pod (512)",
    )
    parser.add_argument(
        "--function-warm-pool",
        type=int,
        default=1,
        help="warm pods per function whose shape no generic pod fits (1)",
    )
    parser.add_argument(
        "--region", default=DEFAULT_REGION, help=f"region in ARNs ({DEFAULT_REGION})"
    )
    add_url_flags(parser)  # status.url: the gateway must be given the same values
    parser.add_argument(
        "--agent-key-file",
        default=None,
        help="the key (a mounted Secret) each pod's agent token is derived from; must be the "
        "gateways'",
    )
    parser.add_argument(
        "--assumable-role",
        dest="assumable_roles",
        action="append",
        default=[],
        metavar="[NAMESPACE/]NAME",
        help="a ServiceAccount a Function's role may name without the kubelambda.dev/assumable "
        "annotation (repeatable; NAME alone: in every served namespace)",
    )
    pods = parser.add_argument_group("function pods")
    pods.add_argument("--agent-memory", type=int, default=128, help="MB of the agent sidecar (128)")
    pods.add_argument(
        "--agent-cpu", type=int, default=100, help="millicores the agent sidecar requests (100)"
    )
    pods.add_argument(
        "--cpu-limits",
        action="store_true",
        help="cap CPU at the requests (off: a function bursts during init, as on Lambda)",
    )
    pods.add_argument(
        "--readiness-period", type=int, default=2, help="seconds between readiness probes (2)"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (INFO)")


def run(args: argparse.Namespace) -> int:
    from kubelambda.operator.config import ConfigError, OperatorConfig, parse_counts, parse_pairs

    if not args.namespaces and not args.all_namespaces:
        print(
            "kubelambda operator: give --namespace=NS (repeatable) or --all-namespaces",
            file=sys.stderr,
        )
        return 2
    if not args.standalone and not args.leader_election:
        print("kubelambda operator: give --standalone or --leader-election=LEASE", file=sys.stderr)
        return 2
    if args.leader_election:
        args.leader_election_namespace = args.leader_election_namespace or os.environ.get(
            "POD_NAMESPACE"
        )
        if not args.leader_election_namespace:
            print(
                "kubelambda operator: --leader-election needs --leader-election-namespace "
                "(or POD_NAMESPACE)",
                file=sys.stderr,
            )
            return 2
        if args.lease_duration < 3:
            print("kubelambda operator: --lease-duration must be >= 3 (seconds)", file=sys.stderr)
            return 2
    from kubelambda.kube.agentauth import read_key

    try:
        agent_key = read_key(args.agent_key_file)
    except (ValueError, OSError) as exc:
        print(f"kubelambda operator: {exc}", file=sys.stderr)
        return 2
    try:
        config = OperatorConfig(
            agent_image=args.agent_image,
            namespaces=tuple(args.namespaces),
            runtime_images=parse_pairs("--runtime-image", args.runtime_image),
            warm_pool=parse_counts("--warm-pool", args.warm_pool),
            idle_keepalive=args.idle_keepalive,
            max_age=args.max_age,
            claim_lease=args.claim_lease,
            start_timeout=args.start_timeout,
            refill_delay=args.refill_delay,
            refill_floor=args.refill_floor,
            generic_memory=args.generic_memory,
            generic_ephemeral=args.generic_ephemeral_storage,
            function_warm=args.function_warm_pool,
            region=args.region,
            url_domain=url_domain(args),
            agent_key=agent_key,
            agent_memory=args.agent_memory,
            agent_cpu=args.agent_cpu,
            cpu_limits=args.cpu_limits,
            readiness_period=args.readiness_period,
            home=args.release_namespace or os.environ.get("POD_NAMESPACE") or None,
            pod_owner=args.pod_owner_clusterrole,
            assumable_roles=frozenset(args.assumable_roles),
        )
    except ConfigError as exc:
        print(f"kubelambda operator: {exc}", file=sys.stderr)
        return 2
    return _run_kopf(args, config)


def _run_kopf(args: argparse.Namespace, config: object) -> int:
    import logging

    import kopf

    from kubelambda.operator.config import OperatorConfig
    from kubelambda.operator.handlers import Runtime, register

    assert isinstance(config, OperatorConfig)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    registry = kopf.OperatorRegistry()
    register(registry)
    settings = kopf.OperatorSettings()
    settings.posting.level = logging.WARNING  # handler chatter stays in the log, not in Events
    settings.watching.server_timeout = 120  # watches end server-side and are resumed
    settings.persistence.finalizer = "kubelambda.dev/operator"
    liveness = (
        f"http://{args.liveness_host}:{args.liveness_port}/healthz" if args.liveness_port else None
    )
    options: dict[str, Any] = {
        "registry": registry,
        "settings": settings,
        "standalone": True,  # never kopf peering: the Lease (or a single replica) decides
        "clusterwide": bool(args.all_namespaces),
        "namespaces": tuple(config.namespaces),
        "liveness_endpoint": liveness,
        "memo": kopf.Memo(runtime=Runtime(config)),
    }
    from kubelambda.loop import exiting, run_loop

    if not args.leader_election:
        try:
            kopf.run(**options)
        finally:
            exiting()
        return 0

    return run_loop(_lead(args, options))


async def _lead(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """Stand by until this replica holds the Lease, then run kopf (handlers and the pool keeper)
    only while it does. Losing the Lease ends the process at once: it must never act beside the
    next leader, and its Deployment restarts it as a standby."""
    import asyncio
    import logging
    import socket
    import uuid

    import kopf

    from kubelambda.kube.client import KubeApi
    from kubelambda.loop import stop_requested
    from kubelambda.operator.elector import LeaderElector, standby_health
    from kubelambda.operator.leadership import LeaseTimes

    log = logging.getLogger("kubelambda.operator")
    duration = float(args.lease_duration)
    # client-go's proportions (15/10/2 s), tighter so a standby leads well within 15 s.
    times = LeaseTimes(duration=duration, renew_deadline=duration * 0.7, retry=duration * 0.2)
    identity = f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    api = KubeApi.from_environment()
    elector = LeaderElector(
        api, args.leader_election_namespace, args.leader_election, identity, times
    )
    stop = stop_requested()  # until kopf installs its own handlers, which also stop it
    health = None
    if args.liveness_port:
        health = await standby_health(args.liveness_host, args.liveness_port)
    acquiring = asyncio.create_task(elector.acquire(), name="standby")
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if health is not None:
            await health.cleanup()  # kopf serves /healthz on the same port from now on
    if not acquiring.done():
        acquiring.cancel()
        await api.close()
        return 0
    options["memo"].runtime.may_act = elector.fresh
    operator = asyncio.create_task(kopf.operator(stop_flag=stop, **options), name="kopf")
    holding = asyncio.create_task(elector.hold(), name="lease")
    done, _ = await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
    if holding in done:
        log.error("lost leadership of lease %s: exiting now", args.leader_election)
        logging.shutdown()
        os._exit(3)
    holding.cancel()
    await elector.release()
    await api.close()
    operator.result()
    return 0
