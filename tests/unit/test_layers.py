"""Imports inside kubelambda run one way: api -> runtime -> serving -> kube -> {gateway, operator,
sources, dev}. Every module's imports are read with `ast` (function-level and TYPE_CHECKING ones
too), so a back-edge fails here before it can tangle two packages again."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "kubelambda"

# package -> the packages its modules may import (itself always included)
ALLOWED: dict[str, set[str]] = {
    "api": set(),
    "runtime": {"api"},
    "serving": {"api", "runtime"},
    "kube": {"api", "runtime", "serving"},
    "gateway": {"api", "runtime", "serving", "kube"},
    "operator": {"api", "runtime", "serving", "kube"},
    "sources": {"api", "runtime", "serving", "kube"},
    # `kubelambda deploy`/`publish`: to a cluster (kube) or a gateway's API (boto3).
    "deploy": {"api", "runtime", "serving", "kube"},
    # Dev mode is the gateway run on one machine: it builds the same gateway assembly, with
    # local processes for pods and a folder for the cluster. It never reaches the operator.
    "dev": {"api", "runtime", "serving", "kube", "gateway", "sources"},
}
# Top-level modules: `__init__`, `loop` and `addresses` are leaves everyone may use; `cli` wires
# every role.
LEAVES = {"__init__", "loop", "addresses"}
TOP = {"cli"}


def area(module: str) -> str:
    """`kubelambda.gateway.cluster.server` -> `gateway`; `kubelambda.loop` -> `loop`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imported(path: Path) -> list[tuple[int, str]]:
    """Every kubelambda module `path` imports, with its line, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from kubelambda import gateway` names a package, not an attribute.
            names = [f"{target}.{a.name}" for a in node.names] if target == "kubelambda" else []
            found += [(node.lineno, n) for n in names or [target]]
    return [
        (line, mod) for line, mod in found if mod == "kubelambda" or mod.startswith("kubelambda.")
    ]


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def violations(path: Path) -> list[str]:
    source = area(module_name(path)) if path.parent != PACKAGE else path.stem
    problems = []
    for line, target in imported(path):
        into = area(target)
        if source in TOP or into in LEAVES or into == source:
            continue
        allowed = ALLOWED.get(source)
        if allowed is None:  # a leaf module importing a package, or a package not listed here
            problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {source} is not layered")
        elif into not in allowed:
            problems.append(
                f"{path.relative_to(PACKAGE.parent)}:{line}: {source} imports {target} "
                f"({source} may import {', '.join(sorted(allowed)) or 'nothing else'})"
            )
    return problems


def test_every_package_is_layered() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED), "add the new package to ALLOWED (and docs/architecture.md)"
    top_modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert top_modules <= LEAVES | TOP


def test_imports_run_one_way() -> None:
    found = [problem for path in modules() for problem in violations(path)]
    assert len(modules()) > 50  # the walk did find the package
    assert not found, "imports against the layers:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "code", "expected"),
    [
        ("gateway/x.py", "from kubelambda.operator import contract", "gateway imports"),
        ("operator/x.py", "import kubelambda.gateway.pool", "operator imports"),
        ("serving/x.py", "from kubelambda.kube.view import ClusterView", "serving imports"),
        ("kube/x.py", "def f():\n    from kubelambda.gateway import api", "kube imports"),
        ("runtime/x.py", "from ..serving import errors", "runtime imports"),
        ("gateway/x.py", "from kubelambda import dev", "gateway imports"),
        ("dev/x.py", "from kubelambda.operator.config import OperatorConfig", "dev imports"),
        ("sources/x.py", "from kubelambda.gateway.invoker import Invoker", "sources imports"),
        ("gateway/x.py", "from kubelambda.serving.catalog import Catalog", None),
        ("dev/x.py", "from kubelambda.gateway.api import GatewayApi", None),
        ("operator/x.py", "from . import status", None),
    ],
)
def test_the_check_catches_back_edges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, code: str, expected: str | None
) -> None:
    """The walk itself: a planted back-edge is reported, an allowed import is not."""
    root = tmp_path / "kubelambda"
    path = root / source
    path.parent.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (path.parent / "__init__.py").write_text("")
    path.write_text(code + "\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", root)
    found = violations(path)
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0], found
