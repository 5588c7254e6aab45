"""The `kubelambda` command line: one entry point, one subcommand per role or tool.

Each subcommand lives in the module that owns its role and exposes two functions:
``configure(parser)`` declares its flags and ``run(args) -> int`` runs it. This module only
wires them together, importing a role's module when that role is asked for, so that
`kubelambda --help` stays fast and a role never pays for another's imports.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from kubelambda import __version__


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    module: str | None  # None: not built yet
    description: str = ""


COMMANDS: tuple[Command, ...] = (
    Command(
        "dev",
        "run the gateway and environments on this machine from a folder of manifests",
        "kubelambda.dev.command",
    ),
    Command(
        "invoke",
        "invoke a function through a gateway and print its result",
        "kubelambda.gateway.invoke_command",
    ),
    Command(
        "operator",
        "run the kopf operator: reconcile resources into warm-pool pods",
        "kubelambda.operator.command",
    ),
    Command(
        "gateway",
        "run the gateway: Invoke API, routing, admission, dispatch, async queue",
        "kubelambda.gateway.command",
    ),
    Command(
        "agent",
        "run one execution environment: the Lambda Runtime API for a runtime process",
        "kubelambda.runtime.command",
    ),
    Command(
        "poll",
        "poll a folder's EventSourceMappings, invoking through a gateway (no cluster)",
        "kubelambda.sources.command",
    ),
    Command(
        "poller",
        "run the cluster's poller: own mappings through Leases, poll them, write their status",
        "kubelambda.sources.cluster_command",
    ),
    Command(
        "logs",
        "print a function's recent log lines from a gateway; --follow for the next ones",
        "kubelambda.gateway.logs_command",
    ),
    Command(
        "crds",
        "write the CustomResourceDefinitions generated from the models",
        "kubelambda.api.command",
    ),
    Command(
        "validate",
        "validate manifests against the resource models and report every error",
        "kubelambda.api.validate_command",
    ),
    Command(
        "deploy",
        "package code folders, upload them to the code store and apply the manifests",
        "kubelambda.deploy.command",
    ),
    Command(
        "publish",
        "publish a Version of a function from its current $LATEST and move an alias",
        "kubelambda.deploy.publish_command",
    ),
)


def _module_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubelambda",
        description=(
            "kubelambda runs AWS Lambda functions on Kubernetes, or on this machine with "
            "`kubelambda dev`. boto3 and the AWS CLI talk to its gateway unchanged."
        ),
        epilog="Run `kubelambda COMMAND --help` for a command's flags.",
    )
    parser.add_argument("--version", action="version", version=f"kubelambda {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in COMMANDS:
        built = command.module is not None and _module_available(command.module)
        summary = command.summary if built else f"{command.summary} (not built yet)"
        child = sub.add_parser(
            command.name, help=summary, description=command.description or summary
        )
        if built:
            assert command.module is not None
            importlib.import_module(command.module).configure(child)
        child.set_defaults(_command=command, _built=built)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command | None = getattr(args, "_command", None)
    if command is None:
        parser.print_help()
        return 2
    if not args._built:
        print(
            f"kubelambda {command.name}: not built yet. See the project's open issues; "
            "nothing was done.",
            file=sys.stderr,
        )
        return 2
    assert command.module is not None
    result: int = importlib.import_module(command.module).run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
