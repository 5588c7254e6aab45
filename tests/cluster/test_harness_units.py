"""Unit tests of the harness's pure pieces: pod-spec translation, volumes, the Node's objects."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cluster.harness import node, volumes
from tests.cluster.harness.kubelet import first_subnet
from tests.cluster.harness.podspec import (
    ContainerConfigError,
    ImageTable,
    Rewriter,
    container_argv,
    expand,
    quantity,
)


def test_podspec_translation() -> None:
    assert expand("$(A)-$$(A)-$(B)", {"A": "1"}) == "1-$(A)-$(B)"
    assert quantity("256Mi") == 256 * 2**20 and quantity("500m") == 0.5
    rewrite = Rewriter({"/var/task": Path("/tmp/x/task")}, "127.0.9.9")
    assert rewrite("--dir=/var/task/app --host=0.0.0.0") == "--dir=/tmp/x/task/app --host=127.0.9.9"
    assert rewrite("/var/taskforce http://localhost:80") == "/var/taskforce http://127.0.9.9:80"
    image = ImageTable.default().resolve("public.ecr.aws/lambda/python:3.12")
    assert container_argv({"args": ["app.handler"]}, image, {})[:3] == [
        "python3",
        "-m",
        "awslambdaric",
    ]
    assert container_argv({"command": ["kubelambda", "agent"]}, image, {}) == [
        "kubelambda",
        "agent",
    ]


def test_image_pull_delays_match_by_pattern() -> None:
    table = ImageTable.default()
    table.delay_pulls("registry.example/*", 2.0)
    table.delay_pulls("registry.example/fast:*", 0.0)
    assert table.pull_delay("registry.example/slow:1") == 2.0
    assert table.pull_delay("registry.example/fast:1") == 0.0
    assert table.pull_delay("python:3.12") == 0.0


POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
    "spec": {
        "containers": [
            {
                "name": "c",
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}}},
                    {
                        "name": "B",
                        "valueFrom": {
                            "secretKeyRef": {"name": "opt", "key": "b", "optional": True}
                        },
                    },
                ],
            }
        ],
        "volumes": [
            {"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}},
            {
                "name": "kube-api-access",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "namespace",
                                        "fieldRef": {"fieldPath": "metadata.namespace"},
                                    }
                                ]
                            }
                        },
                    ]
                },
            },
        ],
    },
}


def test_references_tokens_and_the_projected_layout(tmp_path: Path) -> None:
    assert sorted(volumes.referenced(POD)) == [
        ("ConfigMap", "cm", False),
        ("ConfigMap", "kube-root-ca.crt", False),
        ("Secret", "opt", True),
    ]
    assert volumes.tokens(POD) == {("", 3607)}
    data = {("ConfigMap", "ns", "kube-root-ca.crt"): {"ca.crt": "PEM"}}
    laid = volumes.prepare(POD, tmp_path, lambda k, n, r: data.get((k, n, r)), {("", 3607): "jwt"})
    access = laid.paths["kube-api-access"]
    assert (access / "token").read_text() == "jwt" and (access / "token").stat().st_mode & 0o77 == 0
    assert (access / "ca.crt").read_text() == "PEM"
    assert (access / "namespace").read_text() == "ns"
    assert laid.size_limits == {"scratch": 2**20}
    (laid.paths["scratch"] / "f").write_bytes(b"x" * 10)
    assert volumes.usage(laid.paths["scratch"]) == 10


def test_a_missing_non_optional_source_is_a_config_error(tmp_path: Path) -> None:
    missing = re.escape('configmap "kube-root-ca.crt" not found')
    with pytest.raises(ContainerConfigError, match=missing):
        volumes.prepare(POD, tmp_path, lambda *_: None, {("", 3607): "jwt"})


def test_node_objects() -> None:
    status = node.node_status("n1", "2026-01-01T00:00:00Z")
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "MemoryPressure": "False",
        "DiskPressure": "False",
        "PIDPressure": "False",
        "Ready": "True",
    }
    assert status["allocatable"]["pods"] == "250"
    lease = node.lease_object("n1", "uid-1")
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["spec"]["leaseDurationSeconds"] == node.LEASE_SECONDS
    assert lease["spec"]["renewTime"].endswith("Z") and "." in lease["spec"]["renewTime"]


def test_xdist_workers_draw_pod_subnets_from_their_own_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    drawn: dict[str, set[int]] = {}
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        drawn[worker] = {first_subnet() for _ in range(2000)}
    assert drawn["gw0"].isdisjoint(drawn["gw1"])
    assert all(2 <= s <= 250 for s in drawn["gw0"] | drawn["gw1"])
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert len({first_subnet() for _ in range(2000)}) > 124  # alone: any of 2..250
