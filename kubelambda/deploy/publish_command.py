"""`kubelambda publish FUNCTION[:ALIAS]`: publish a Version of $LATEST and, with an alias, point
it there (creating the alias when it does not exist). Against a cluster (the current kubeconfig
context) or, with --endpoint-url, a gateway."""

from __future__ import annotations

import argparse
import sys

from kubelambda.deploy.command import add_target_flags


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("function", metavar="FUNCTION[:ALIAS]", help="what to publish")
    parser.add_argument("--description", default=None, help="the version's description")
    add_target_flags(parser)


def run(args: argparse.Namespace) -> int:
    from kubelambda.loop import run_loop

    return run_loop(_publish(args))


async def _publish(args: argparse.Namespace) -> int:
    from kubelambda.deploy.command import _target
    from kubelambda.deploy.publish import publish, wait_active
    from kubelambda.serving.errors import LambdaError

    function, _, alias = str(args.function).partition(":")
    target, close = await _target(args)
    try:
        version, moved = await publish(target.call, function, alias or None, args.description)
        config = await wait_active(target.call, function, version, 120)
    except LambdaError as exc:
        print(f"kubelambda publish: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await close()
    line = f"{function}: version {version} ({config.get('State')})"
    if moved:
        line += f"; alias {alias} {moved} -> {version}"
    print(line)
    return 0 if config.get("State") == "Active" else 1
