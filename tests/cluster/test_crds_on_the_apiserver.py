"""What only a real apiserver can check about our CRDs: they are accepted and Established, every
CEL rule (`x-kubernetes-validations`) compiles and rejects its bad object with its message, the
printer columns and short names through the real kubectl, and the garbage collection of a deleted
Function's pods by the real controller-manager.

Each test here fails on CRDs that a real apiserver refuses (the issue's three CRDs with an
`x-kubernetes-*` key inside `not:`): the `lambda_crds` fixture reports the apiserver's refusal.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client import ApiException

from kubelambda.operator.config import OperatorConfig
from kubelambda.operator.podbuilder import PodRequest, build_pod
from tests.cluster.harness.controlplane import REPO
from tests.cluster.harness.waiting import wait_gone, wait_pod_ready, wait_until
from tests.cluster.test_kubectl import find_kubectl

G, V = "kubelambda.dev", "v1alpha1"
PLURALS = {"Function": "functions", "Version": "versions", "Alias": "aliases"}
KUBECTL = find_kubectl()
FN = {
    "runtime": "python3.12",
    "handler": "app.handler",
    "code": {"inline": {"app.py": "def handler(event, context):\n    return 1\n"}},
}
VERSION_SPEC = {"functionName": "f", "version": 1, "function": FN, "codeSha256": "a" * 64}
ALIAS_SPEC = {"functionName": "f", "functionVersion": "1"}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(base)
    spec.update(changes)
    return spec


# (kind, schema path, message) -> (spec to create, JSON patch that breaks it; None: the create
# itself must be refused). The table must name every rule in crds/ (a test checks it).
CASES: dict[tuple[str, str, str], tuple[dict[str, Any], list[dict[str, Any]] | None]] = {
    ("Alias", ".spec", "an alias that points to $LATEST cannot route to other versions"): (
        _with(
            ALIAS_SPEC,
            functionVersion="$LATEST",
            routingConfig={"additionalVersionWeights": {"2": 0.1}},
        ),
        None,
    ),
    ("Alias", ".spec.routingConfig.additionalVersionWeights", "keys must match ^[0-9]+$"): (
        _with(ALIAS_SPEC, routingConfig={"additionalVersionWeights": {"two": 0.1}}),
        None,
    ),
    (
        "Function",
        ".spec",
        "packageType Image requires code.image; packageType Zip requires runtime",
    ): (_with(FN, packageType="Image"), None),
    ("Function", ".spec.code", "sha256 is required with url"): (
        _with(FN, code={"url": "https://example.org/code.zip"}),
        None,
    ),
    ("Version", ".spec", "version cannot be removed once set"): (
        VERSION_SPEC,
        [{"op": "remove", "path": "/spec/version"}],
    ),
    ("Version", ".spec", "function cannot be removed once set"): (
        VERSION_SPEC,
        [{"op": "remove", "path": "/spec/function"}],
    ),
    ("Version", ".spec", "codeSha256 cannot be removed once set"): (
        VERSION_SPEC,
        [{"op": "remove", "path": "/spec/codeSha256"}],
    ),
    ("Version", ".spec.functionName", "functionName is immutable once set"): (
        VERSION_SPEC,
        [{"op": "replace", "path": "/spec/functionName", "value": "g"}],
    ),
    ("Version", ".spec.version", "version is immutable once set"): (
        VERSION_SPEC,
        [{"op": "replace", "path": "/spec/version", "value": 2}],
    ),
    (
        "Version",
        ".spec.function",
        "packageType Image requires code.image; packageType Zip requires runtime",
    ): (_with(VERSION_SPEC, function={**FN, "packageType": "Image"}), None),
    ("Version", ".spec.function", "function is immutable once set"): (
        VERSION_SPEC,
        [{"op": "replace", "path": "/spec/function/timeout", "value": 9}],
    ),
    ("Version", ".spec.function.code", "sha256 is required with url"): (
        _with(VERSION_SPEC, function={**FN, "code": {"url": "https://example.org/code.zip"}}),
        None,
    ),
    ("Version", ".spec.codeSha256", "codeSha256 is immutable once set"): (
        VERSION_SPEC,
        [{"op": "replace", "path": "/spec/codeSha256", "value": "b" * 64}],
    ),
}


def _rules(node: Any, path: str = "") -> list[tuple[str, str]]:
    out = [(path, rule["message"]) for rule in node.get("x-kubernetes-validations", [])]
    for key, sub in node.get("properties", {}).items():
        out += _rules(sub, f"{path}.{key}")
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(node.get(key), dict):
            out += _rules(node[key], path + suffix)
    return out


def test_the_four_crds_are_accepted_established_and_structural(lambda_crds: list[Any]) -> None:
    assert sorted(crd.spec.names.kind for crd in lambda_crds) == [
        "Alias",
        "EventSourceMapping",
        "Function",
        "Version",
    ]
    for crd in lambda_crds:
        conditions = {c.type: c for c in crd.status.conditions}
        assert conditions["Established"].status == "True", crd.metadata.name
        assert conditions["NamesAccepted"].status == "True", crd.metadata.name
        assert "NonStructuralSchema" not in conditions, conditions["NonStructuralSchema"].message
        assert crd.status.accepted_names.short_names == crd.spec.names.short_names


def test_every_cel_rule_in_the_crds_has_a_case() -> None:
    found = set()
    for path in sorted((REPO / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        found |= {(doc["spec"]["names"]["kind"], p, m) for p, m in _rules(schema)}
    assert found == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES), ids=lambda c: f"{c[0]}{c[1]}: {c[2]}")
def test_each_cel_rule_rejects_its_bad_object_with_its_message(
    lambda_crds: list[Any],
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
    case: tuple[str, str, str],
) -> None:
    kind, _path, message = case
    spec, breaking = CASES[case]
    plural = PLURALS[kind]
    body = {"apiVersion": f"{G}/{V}", "kind": kind, "metadata": {"name": "x"}, "spec": spec}
    if breaking is None:
        with pytest.raises(ApiException) as refused:
            custom.create_namespaced_custom_object(G, V, namespace, plural, body)
    else:
        custom.create_namespaced_custom_object(G, V, namespace, plural, body)
        with pytest.raises(ApiException) as refused:
            custom.patch_namespaced_custom_object(
                G, V, namespace, plural, "x", breaking, _content_type="application/json-patch+json"
            )
    assert refused.value.status == 422, refused.value.body
    assert message in refused.value.body, refused.value.body


def test_the_schema_applies_defaults_and_names_the_field(
    lambda_crds: list[Any], custom: kubernetes.client.CustomObjectsApi, namespace: str
) -> None:
    body = {"apiVersion": f"{G}/{V}", "kind": "Function", "metadata": {"name": "f"}, "spec": FN}
    created = custom.create_namespaced_custom_object(G, V, namespace, "functions", body)
    assert created["spec"]["memorySize"] == 128 and created["spec"]["timeout"] == 3
    small = {**body, "metadata": {"name": "g"}, "spec": {**FN, "memorySize": 64}}
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(G, V, namespace, "functions", small)
    assert refused.value.status == 422 and "spec.memorySize" in refused.value.body
    two = {**body, "metadata": {"name": "h"}, "spec": {**FN, "code": {**FN["code"], "image": "i"}}}
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(G, V, namespace, "functions", two)
    assert refused.value.status == 422 and "spec.code" in refused.value.body


def _kubectl(kubeconfig: Path, namespace: str, *args: str) -> str:
    result = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(kubeconfig), "--namespace", namespace, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_printer_columns_and_short_names_through_kubectl(
    lambda_crds: list[Any],
    custom: kubernetes.client.CustomObjectsApi,
    kubeconfig: Path,
    namespace: str,
) -> None:
    for kind, spec in (("Function", {**FN, "reservedConcurrency": 4}), ("Alias", ALIAS_SPEC)):
        body = {"apiVersion": f"{G}/{V}", "kind": kind, "metadata": {"name": "f"}, "spec": spec}
        custom.create_namespaced_custom_object(G, V, namespace, PLURALS[kind], body)
    custom.patch_namespaced_custom_object_status(
        G, V, namespace, "functions", "f", {"status": {"state": "Active", "latestVersion": 3}}
    )
    header, row = _kubectl(kubeconfig, namespace, "get", "fn").splitlines()
    assert header.split() == ["NAME", "RUNTIME", "STATE", "LATEST", "VERSION", "RESERVED", "AGE"]
    assert row.split()[:5] == ["f", "python3.12", "Active", "3", "4"]
    wide = _kubectl(kubeconfig, namespace, "get", "fn", "-o", "wide").splitlines()[0]
    assert "CODE SHA256" in wide and "REASON" in wide
    alias_header = _kubectl(kubeconfig, namespace, "get", "fna").splitlines()[0].split()
    assert alias_header[:4] == ["NAME", "FUNCTION", "ALIAS", "VERSION"]
    everything = _kubectl(kubeconfig, namespace, "get", "kubelambda", "-o", "name").split()
    assert sorted(everything) == ["alias.kubelambda.dev/f", "function.kubelambda.dev/f"]
    for short in ("fnv", "esm"):
        assert _kubectl(kubeconfig, namespace, "get", short) == ""


def test_the_garbage_collector_removes_a_deleted_functions_pods(
    lambda_crds: list[Any],
    custom: kubernetes.client.CustomObjectsApi,
    core: kubernetes.client.CoreV1Api,
    kubelet: Any,
    namespace: str,
) -> None:
    body = {"apiVersion": f"{G}/{V}", "kind": "Function", "metadata": {"name": "f"}, "spec": FN}
    fn = custom.create_namespaced_custom_object(G, V, namespace, "functions", body)
    owner = {
        "apiVersion": f"{G}/{V}",
        "kind": "Function",
        "name": "f",
        "uid": fn["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    config = OperatorConfig(agent_image="kubelambda/kubelambda:0.1.0", namespaces=(namespace,))
    request = PodRequest(
        "function", namespace, config.generic_shape("python3.12"), function="f", owner=owner
    )
    pod = core.create_namespaced_pod(namespace, build_pod(config, request))
    name = pod.metadata.name
    assert pod.metadata.owner_references[0].uid == fn["metadata"]["uid"]
    wait_pod_ready(core, namespace, name, timeout=60)  # the operator's pod really runs
    custom.delete_namespaced_custom_object(G, V, namespace, "functions", "f")
    wait_gone(lambda: core.read_namespaced_pod(name, namespace), timeout=60)
    # The kubelet stops the processes, confirms the deletion, then forgets the pod: the API
    # object may be gone a moment before its record is.
    wait_until(
        lambda: (namespace, name) not in kubelet.pods,
        what="the kubelet to stop the pod's processes and forget it",
    )
