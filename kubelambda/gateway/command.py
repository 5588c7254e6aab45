"""`kubelambda gateway --cluster`: the Invoke API on a cluster, dispatching to warm pods.

Flags are the ones the Helm chart passes (see gateway/README.md). Heavy imports happen in
`run()`, so `kubelambda --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from kubelambda.gateway.flags import add_auth_flags, add_serving_flags, add_url_flags

if TYPE_CHECKING:
    from kubelambda.serving.codestore import CodeBucket


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Serve Lambda's Invoke API for the Functions of a cluster, dispatching to warm pods that "
        "the operator keeps. Without a cluster, use `kubelambda dev`."
    )
    parser.add_argument(
        "--cluster", action="store_true", help="read resources and pods from the Kubernetes API"
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    parser.add_argument("--port", type=int, default=9000, help="port: API, /metrics, probes")
    parser.add_argument(
        "--default-namespace", default="default", help="namespace of a bare function name"
    )
    parser.add_argument(
        "--namespace",
        dest="namespaces",
        action="append",
        default=[],
        metavar="NS",
        help="a namespace to serve (repeatable; none: all namespaces)",
    )
    add_serving_flags(parser)
    add_url_flags(parser)
    parser.add_argument(
        "--queue", default=None, help="the async queue's URL (sqlite:// or nats://)"
    )
    add_auth_flags(parser)
    parser.add_argument(
        "--sigv4-secret",
        default=None,
        metavar="NAME",
        help="Secret (in $POD_NAMESPACE) whose keys.yaml holds the SigV4 keys (sigv4)",
    )
    parser.add_argument(
        "--identity", default=None, help="this replica's name in claims (default: $POD_NAME)"
    )
    parser.add_argument(
        "--claim-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for a warm pod before failing a call (30)",
    )
    parser.add_argument(
        "--claim-lease",
        type=float,
        default=60.0,
        help="seconds a claim lives unrenewed; must equal the operator's (60)",
    )
    parser.add_argument(
        "--agent-key-file",
        default=None,
        help="the key (a mounted Secret) the agents' control-API tokens derive from; must be "
        "the operator's",
    )
    store = parser.add_argument_group(
        "code store (an S3-compatible bucket the control API uploads zips to; keys from "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
    )
    store.add_argument("--code-store-bucket", default=None, help="bucket (unset: no uploads)")
    store.add_argument("--code-store-endpoint", default=None, help="endpoint URL (AWS S3: unset)")
    store.add_argument("--code-store-region", default="us-east-1", help="region (us-east-1)")
    store.add_argument(
        "--code-store-secret",
        default=None,
        help="the Secret, in each function namespace, agents read the store's keys from",
    )
    parser.add_argument(
        "--ledger-namespace",
        default=None,
        metavar="NS",
        help="share one concurrency ledger with the other replicas through Leases in NS "
        "(the chart: its own namespace); unset: this replica admits alone",
    )
    parser.add_argument(
        "--ledger-interval",
        type=float,
        default=0.2,
        help="seconds between the shared ledger's sync rounds (0.2)",
    )
    parser.add_argument(
        "--ledger-heartbeat",
        type=float,
        default=2.0,
        help="seconds a replica's heartbeat lives unrenewed; then its allotment returns (2)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (INFO)")


def code_bucket(args: argparse.Namespace) -> CodeBucket | None:
    """The code store the flags name (a CodeBucket), or None."""
    import os

    from kubelambda.runtime.s3 import S3Endpoint
    from kubelambda.serving.codestore import CodeBucket

    if not args.code_store_bucket:
        return None
    where = S3Endpoint(
        args.code_store_endpoint,
        args.code_store_region,
        os.environ.get("AWS_ACCESS_KEY_ID"),
        os.environ.get("AWS_SECRET_ACCESS_KEY"),
    )
    return CodeBucket(args.code_store_bucket, where, args.code_store_secret)


def run(args: argparse.Namespace) -> int:
    import logging

    def fail(message: str) -> int:
        print(f"kubelambda gateway: {message}", file=sys.stderr)
        return 2

    if not args.cluster:
        return fail(
            "only --cluster is served here; on a machine without a cluster use `kubelambda dev DIR`"
        )
    from kubelambda.gateway.auth.guard import parse_modes

    try:
        modes = parse_modes(args.auth)
    except ValueError as exc:
        return fail(str(exc))
    from kubelambda.gateway.cluster.server import ClusterSettings, default_identity
    from kubelambda.gateway.flags import pool_limits, url_domain
    from kubelambda.kube.agentauth import read_key

    try:
        limits = pool_limits(args)
        agent_key = read_key(args.agent_key_file)
    except (ValueError, OSError) as exc:
        return fail(str(exc))
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = ClusterSettings(
        host=args.host,
        port=args.port,
        default_namespace=args.default_namespace,
        namespaces=tuple(args.namespaces),
        limits=limits,
        keepalive=args.idle_keepalive,
        max_age=args.max_age,
        region=args.region,
        identity=args.identity or default_identity(),
        claim_timeout=args.claim_timeout,
        lease=args.claim_lease,
        queue=args.queue,
        url_domain=url_domain(args),
        auth=modes,
        keys=args.keys,
        sigv4_secret=args.sigv4_secret,
        code_store=code_bucket(args),
        agent_key=agent_key,
        ledger_namespace=args.ledger_namespace,
        ledger_interval=args.ledger_interval,
        ledger_heartbeat=args.ledger_heartbeat,
    )
    from kubelambda.loop import run_loop

    return run_loop(_serve(settings))


async def _serve(settings: object) -> int:
    from kubelambda.gateway.asyncq.queue import QueueError
    from kubelambda.gateway.auth.keys import KeysError
    from kubelambda.gateway.cluster.server import ClusterSettings, cluster_gateway
    from kubelambda.loop import stop_requested

    assert isinstance(settings, ClusterSettings)
    import kubernetes

    try:
        gateway = cluster_gateway(settings)
    except kubernetes.config.ConfigException as exc:
        print(
            f"kubelambda gateway: no cluster credentials (in-cluster or KUBECONFIG): {exc}",
            file=sys.stderr,
        )
        return 2
    except KeysError as exc:
        print(f"kubelambda gateway: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # an unusable --queue URL
        print(f"kubelambda gateway: --queue: {exc}", file=sys.stderr)
        return 2
    try:
        await gateway.ready_auth()
    except KeysError as exc:
        print(f"kubelambda gateway: {exc}", file=sys.stderr)
        await gateway.stop()
        return 2
    try:
        await gateway.start()
    except QueueError as exc:
        print(f"kubelambda gateway: the async queue cannot open: {exc}", file=sys.stderr)
        await gateway.stop()
        return 1
    except OSError as exc:
        print(
            f"kubelambda gateway: cannot listen on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
        )
        await gateway.stop()
        return 1
    print(
        f"kubelambda gateway: {settings.identity} serving on {settings.host}:{gateway.port} "
        f"({', '.join(settings.namespaces) or 'all namespaces'})",
        file=sys.stderr,
        flush=True,
    )
    await stop_requested().wait()
    await gateway.stop()
    return 0
