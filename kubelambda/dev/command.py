"""`kubelambda dev DIR`: serve a folder of manifests on this machine, with no cluster."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kubelambda.gateway.flags import add_auth_flags, add_serving_flags, add_url_flags

# Enough for five new functions called back to back to each find a warm environment; a warm
# Python shim is about 10 MB of memory.
WARM_PER_RUNTIME = 5

DESCRIPTION = """\
Serve every Function, Version and Alias manifest in DIR (searched recursively) through
Lambda's Invoke API, with execution environments as local processes. boto3 and the AWS CLI
work with --endpoint-url. Manifests and code are reloaded when they change; in-flight calls
finish on the code they started with.

The Lambda control API is served too (CreateFunction, UpdateFunctionCode, PublishVersion,
CreateAlias, ...): what it creates lives in the state folder (STATE/api/), survives restarts and
is listed beside DIR's manifests, which stay read-only to it (edit the files instead).

Versions without spec.version are numbered after the highest explicit number of their
function, in file order. Python functions run on the interpreter kubelambda runs on, importing
from their code folder and layers first, then from this environment (your venv).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("folder", metavar="DIR", type=Path, help="folder of manifests")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port to listen on (9000)")
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="where environments, snapshots and queues live (default: DIR/.kubelambda)",
    )
    parser.add_argument(
        "--namespace", default="default", help="namespace for unqualified names (default)"
    )
    add_serving_flags(parser)
    add_url_flags(parser)
    add_auth_flags(parser)
    parser.add_argument(
        "--warm-per-runtime",
        type=int,
        default=WARM_PER_RUNTIME,
        help="generic warm environments kept per runtime in use, started before `ready:` and "
        f"topped up as they are used ({WARM_PER_RUNTIME})",
    )
    parser.add_argument("--no-reload", action="store_true", help="do not watch DIR for changes")
    parser.add_argument(
        "--no-pinning",
        action="store_true",
        help="let the OS place the gateway and the runtimes on CPUs (by default the gateway "
        "runs on one CPU, a lone invocation's runtime beside it, concurrent ones on the others)",
    )
    parser.add_argument(
        "--secrets",
        metavar="FILE",
        type=Path,
        help="values for environment.secretKeyRefs: Kubernetes Secret manifests or "
        "{secret: {key: value}} in YAML, or a dotenv file (KEY=value, matched by key)",
    )
    parser.add_argument(
        "--s3-endpoint",
        metavar="URL",
        help="S3-compatible endpoint CreateFunction's S3Bucket/S3Key are read from (credentials: "
        "the AWS_* environment variables)",
    )
    queue = parser.add_argument_group("asynchronous invocation (InvocationType Event)")
    queue.add_argument(
        "--queue",
        metavar="URL",
        help="the durable event queue: sqlite:///PATH (sqlite:////abs/path) or "
        "nats://HOST:PORT[?replicas=N&ack_wait=S] for NATS JetStream "
        "(default: SQLite at STATE/async/events.sqlite3)",
    )
    queue.add_argument(
        "--retry-base",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="wait before the first retry of a failed event; the second waits twice as long, "
        "throttle backoff scales with it (60, as Lambda)",
    )
    queue.add_argument(
        "--async-concurrency",
        type=int,
        default=16,
        metavar="N",
        help="async events processed at once, within the functions' concurrency (16)",
    )
    queue.add_argument(
        "--max-event-age",
        type=float,
        metavar="SECONDS",
        help="cap every function's maximumEventAgeInSeconds, below its 60 s minimum too "
        "(for tests; default: no cap)",
    )
    queue.add_argument(
        "--nats-url",
        default="nats://127.0.0.1:4222",
        help="server for NATS destinations when the queue is not NATS (nats://127.0.0.1:4222)",
    )


def _not_a_connect_attempt(record: logging.LogRecord) -> bool:
    """aiokafka logs each failed connection attempt as an ERROR before it raises the error
    our poller reports; only those records are dropped."""
    return not str(record.msg).startswith("Unable connect to")


def run(args: argparse.Namespace) -> int:
    import sys

    from kubernetes import config as kubernetes_config

    from kubelambda.api.resources import ManifestError
    from kubelambda.dev.secrets import SecretsFileError
    from kubelambda.dev.server import DevServer, DevSettings
    from kubelambda.dev.terminal import Terminal
    from kubelambda.gateway.asyncq.queue import QueueError
    from kubelambda.gateway.auth.keys import KeysError
    from kubelambda.gateway.flags import pool_limits, url_domain
    from kubelambda.gateway.pool import PoolSettings
    from kubelambda.loop import run_loop, stop_requested

    # kubelambda's own notes (async retries and drops, environments that fail) at INFO, on stdout
    # beside the functions' lines; other libraries only when something is wrong.
    terminal = Terminal()
    logging.basicConfig(
        level=logging.WARNING, stream=terminal, format="kubelambda dev: %(levelname)s %(message)s"
    )
    logging.getLogger("kubelambda").setLevel(logging.INFO)
    # A broker that is down is reported by its poller (status line and restart warning); the
    # AMQP and Kafka clients' own per-attempt connection errors would only repeat it.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    logging.getLogger("aiokafka").addFilter(_not_a_connect_attempt)
    folder: Path = args.folder
    if not folder.is_dir():
        print(f"kubelambda dev: {folder} is not a folder", file=sys.stderr)
        return 2
    try:
        limits = pool_limits(args)
    except ValueError as exc:
        print(f"kubelambda dev: {exc}", file=sys.stderr)
        return 2
    from kubelambda.gateway.auth.guard import parse_modes

    try:
        modes = parse_modes(args.auth)
    except ValueError as exc:
        print(f"kubelambda dev: {exc}", file=sys.stderr)
        return 2
    settings = DevSettings(
        folder=folder,
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        namespace=args.namespace,
        region=args.region,
        limits=limits,
        pool=PoolSettings(
            generic_per_runtime=args.warm_per_runtime,
            keepalive=args.idle_keepalive,
            max_age=args.max_age,
        ),
        reload=not args.no_reload,
        queue=args.queue,
        retry_base=args.retry_base,
        async_concurrency=args.async_concurrency,
        event_age_cap=args.max_event_age,
        nats_url=args.nats_url,
        secrets=args.secrets,
        url_domain=url_domain(args),
        url_port_served=args.url_port is None,
        auth=modes,
        keys=args.keys,
        s3_endpoint=args.s3_endpoint,
        pin_cpus=not args.no_pinning,
    )
    if args.retry_base <= 0 or args.async_concurrency < 1:
        print("kubelambda dev: --retry-base must be > 0, --async-concurrency >= 1", file=sys.stderr)
        return 2

    async def serve() -> int:
        try:
            server = DevServer(settings, say=terminal.say, function_lines=terminal.function_line)
        except KeysError as exc:
            print(f"kubelambda dev: {exc}", file=sys.stderr)
            return 2
        except kubernetes_config.ConfigException as exc:
            print(
                f"kubelambda dev: --auth kubernetes needs a cluster (KUBECONFIG): {exc}",
                file=sys.stderr,
            )
            return 2
        except ValueError as exc:  # an unusable --queue URL
            print(f"kubelambda dev: --queue: {exc}", file=sys.stderr)
            return 2
        try:
            await server.start()
        except ManifestError as exc:
            print("kubelambda dev: the manifests are invalid:", file=sys.stderr)
            for line in exc.problems:
                print(f"  {line}", file=sys.stderr)
            await server.stop()
            return 1
        except QueueError as exc:
            print(f"kubelambda dev: the async queue cannot open: {exc}", file=sys.stderr)
            await server.stop()
            return 1
        except SecretsFileError as exc:
            print(f"kubelambda dev: --secrets: {exc}", file=sys.stderr)
            await server.stop()
            return 2
        except OSError as exc:
            print(
                f"kubelambda dev: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
            )
            await server.stop()
            return 1
        await stop_requested().wait()
        terminal.say("kubelambda dev: stopping environments")
        await server.stop()
        terminal.flush()
        return 0

    try:
        return run_loop(serve())
    finally:
        terminal.flush()  # whatever the functions wrote last
