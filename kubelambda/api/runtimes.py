"""The one list of Lambda runtimes kubelambda serves, and what each one needs.

Everything that names runtimes reads this module: the resource models (and so the CRDs and
docs/resources.md), the operator's flags, dev mode's load-time checks, and, through a test that
compares them, the Helm chart's values and schema and the docs. Add a runtime here first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

# Lambda's identifiers, in the order docs and the chart list them.
Runtime = Literal[
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
    "provided.al2023",
    "provided.al2",
]
RUNTIMES: tuple[str, ...] = get_args(Runtime)

Family = Literal["python", "nodejs", "provided"]


@dataclass(frozen=True, slots=True)
class RuntimeInfo:
    name: str
    family: Family
    base_image: str  # the official AWS Lambda base image (cluster mode's runtime container)
    dev: str  # what `kubelambda dev` runs it on


def family(runtime: str) -> Family:
    if runtime.startswith("python"):
        return "python"
    if runtime.startswith("nodejs"):
        return "nodejs"
    return "provided"


def base_image(runtime: str) -> str:
    """public.ecr.aws/lambda/python:3.12, .../nodejs:22, .../provided:al2023."""
    kind = family(runtime)
    if kind == "python":
        return f"public.ecr.aws/lambda/python:{runtime.removeprefix('python')}"
    if kind == "nodejs":
        return f"public.ecr.aws/lambda/nodejs:{runtime.removeprefix('nodejs').removesuffix('.x')}"
    return f"public.ecr.aws/lambda/provided:{runtime.removeprefix('provided.')}"


def node_major(runtime: str) -> int | None:
    """20 for nodejs20.x; None for other runtimes."""
    match = re.fullmatch(r"nodejs(\d+)\.x", runtime)
    return int(match.group(1)) if match else None


_DEV = {
    "python": "the Python interpreter kubelambda runs on, with kubelambda's bootstrap",
    "nodejs": "the machine's `node` (18 or later), with kubelambda's bootstrap",
    "provided": "the function's own executable `bootstrap` (in the code or a layer)",
}

TABLE: tuple[RuntimeInfo, ...] = tuple(
    RuntimeInfo(name, family(name), base_image(name), _DEV[family(name)]) for name in RUNTIMES
)
PYTHON_RUNTIMES = tuple(r.name for r in TABLE if r.family == "python")
NODE_RUNTIMES = tuple(r.name for r in TABLE if r.family == "nodejs")
PROVIDED_RUNTIMES = tuple(r.name for r in TABLE if r.family == "provided")
