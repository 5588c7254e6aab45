"""Helpers for the Helm chart tests: a real helm binary and cached renders of the chart.

helm comes from `make tools` (scripts/fetch-helm.sh puts it at .tools/helm). When it is missing
these tests fail with the command to run; they never skip, so CI cannot pass without them.
Set KUBELAMBDA_HELM to use another helm binary (e.g. a Helm 3 install).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubelambda"
HERE = Path(__file__).resolve().parent
RELEASE = "kl"
RELEASE_NAMESPACE = "kubelambda-system"

# name -> values files (relative to tests/chart); every scenario is linted, rendered, validated.
SCENARIOS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "all-features": ("values-all-features.yaml",),
    "namespaced-sigv4": ("values-namespaced-sigv4.yaml",),
}

Manifest = dict[str, Any]


@dataclass(frozen=True)
class HelmResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def helm_path() -> Path:
    """The helm binary, or a test failure that says how to get it."""
    override = os.environ.get("KUBELAMBDA_HELM")
    path = Path(override) if override else REPO / ".tools" / "helm"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"helm not found at {path}: run `make tools` (scripts/fetch-helm.sh) first; "
            "the chart tests never skip",
            pytrace=False,
        )
    return path


def run_helm(args: Sequence[str]) -> HelmResult:
    proc = subprocess.run(
        [str(helm_path()), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            **os.environ,
            # keep helm's caches and config out of the user's home
            "HELM_CACHE_HOME": str(REPO / ".tools" / "helm-home" / "cache"),
            "HELM_CONFIG_HOME": str(REPO / ".tools" / "helm-home" / "config"),
            "HELM_DATA_HOME": str(REPO / ".tools" / "helm-home" / "data"),
        },
    )
    return HelmResult(proc.returncode, proc.stdout, proc.stderr)


def values_args(files: Sequence[str], sets: Sequence[str] = ()) -> list[str]:
    args: list[str] = []
    for name in files:
        args += ["--values", str(HERE / name)]
    for item in sets:
        args += ["--set", item]
    return args


def template(files: Sequence[str] = (), sets: Sequence[str] = ()) -> HelmResult:
    return run_helm(
        [
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            RELEASE_NAMESPACE,
            "--include-crds",
            *values_args(files, sets),
        ]
    )


def parse(rendered: str) -> list[Manifest]:
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    for doc in docs:
        assert isinstance(doc, dict), f"rendered document is not a mapping: {doc!r}"
    return docs


_renders: dict[str, list[Manifest]] = {}


def render_scenario(name: str) -> list[Manifest]:
    if name not in _renders:
        result = template(SCENARIOS[name])
        assert result.returncode == 0, f"helm template ({name}) failed:\n{result.output}"
        _renders[name] = parse(result.stdout)
    return _renders[name]


def of_kind(docs: Sequence[Manifest], *kinds: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] in kinds]


def pod_specs(docs: Sequence[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """(object name, pod spec) of every workload in a render."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield f"Pod/{doc['metadata']['name']}", doc["spec"]


def containers(pod_spec: Manifest) -> list[Manifest]:
    found: list[Manifest] = [
        *pod_spec.get("initContainers", []),
        *pod_spec.get("containers", []),
        *pod_spec.get("ephemeralContainers", []),
    ]
    return found


def find(docs: Sequence[Manifest], kind: str, name_suffix: str) -> Manifest:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert len(hits) == 1, f"expected one {kind} named *{name_suffix}, found {len(hits)}"
    return hits[0]
