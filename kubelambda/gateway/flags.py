"""The flags both gateways take (`kubelambda dev` and `kubelambda gateway --cluster`).

Declared once so the two modes cannot drift apart in names, defaults or help.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kubelambda.api.common import DEFAULT_REGION
from kubelambda.gateway.admission import PoolLimits
from kubelambda.gateway.ledger.rate import parse_rates
from kubelambda.serving.urls import add_url_flags, url_domain

__all__ = ["add_auth_flags", "add_serving_flags", "add_url_flags", "pool_limits", "url_domain"]

DEFAULT_MAX_AGE = 7200.0


def add_serving_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--region", default=DEFAULT_REGION, help=f"region in ARNs and AWS_REGION ({DEFAULT_REGION})"
    )
    parser.add_argument(
        "--concurrency-limit", type=int, default=1000, help="namespace concurrency pool (1000)"
    )
    parser.add_argument(
        "--unreserved-floor",
        type=int,
        default=100,
        help="part of the pool that cannot be reserved (100)",
    )
    parser.add_argument(
        "--scaling-rate",
        action="append",
        default=[],
        metavar="[NS=]N",
        help="new environments per function per 10 s: N for every namespace, NS=N for one "
        "(repeatable; 1000, as Lambda)",
    )
    parser.add_argument(
        "--idle-keepalive",
        type=float,
        default=300.0,
        help="seconds before an idle environment is stopped (300)",
    )
    parser.add_argument(
        "--max-age",
        type=float,
        default=DEFAULT_MAX_AGE,
        help=f"seconds before an environment is recycled ({DEFAULT_MAX_AGE:g})",
    )


def add_auth_flags(parser: argparse.ArgumentParser) -> None:
    auth = parser.add_argument_group("invoke auth")
    auth.add_argument(
        "--auth",
        default="none",
        metavar="MODE",
        help="none, sigv4, kubernetes or sigv4,kubernetes (none): SigV4 keys, and/or a bearer "
        "token checked with TokenReview; in a cluster or with kubernetes, RBAC decides "
        "(verb invoke/get/list on functions)",
    )
    auth.add_argument(
        "--keys",
        type=Path,
        metavar="FILE",
        help="SigV4 keys, YAML: keys: [{accessKeyId, secretAccessKey, user, groups}]",
    )


def pool_limits(args: argparse.Namespace) -> PoolLimits:
    """The namespace pool from the flags; ValueError names the flags when they don't fit."""
    rate, rates = parse_rates(args.scaling_rate)
    try:
        return PoolLimits(
            args.concurrency_limit, args.unreserved_floor, rate, tuple(sorted(rates.items()))
        )
    except ValueError as exc:
        raise ValueError(f"--concurrency-limit/--unreserved-floor: {exc}") from None
