"""The watch layer joins each function pod with its Node's Ready condition (kube/view.py)."""

from __future__ import annotations

from typing import Any

from kubelambda.kube.client import KubeApi
from kubelambda.kube.contract import POOL, STATE
from kubelambda.kube.view import ClusterView, node_essentials


def pod(name: str, node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": {POOL: "generic", STATE: "warm"}},
        "spec": {"nodeName": node},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def node(name: str, ready: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


def test_pods_on_a_notready_node_do_not_serve_though_their_own_condition_says_ready() -> None:
    view = ClusterView(KubeApi("https://127.0.0.1:1"), ["ns"])
    assert view.node_watch is not None
    for name, where in (("a", "alive"), ("b", "dead"), ("c", "unseen")):
        view.watches["pods"][0].objects[("ns", name)] = pod(name, where)
    view.node_watch.objects[("", "alive")] = node("alive", "True")
    view.node_watch.objects[("", "dead")] = node("dead", "Unknown")
    infos = {p.name: p for p in view.pod_infos()}
    assert infos["a"].serving and infos["c"].serving  # a Node not seen (yet) counts as Ready
    assert infos["b"].ready and not infos["b"].node_ready and not infos["b"].serving
    view.node_watch.objects[("", "dead")] = node("dead", "True")
    assert all(p.serving for p in view.pod_infos())


def test_a_view_without_pods_watches_no_nodes() -> None:
    view = ClusterView(KubeApi("https://127.0.0.1:1"), ["ns"], pods=False)
    assert view.node_watch is None and view.node_ready("anything")


def test_the_view_keeps_only_a_nodes_name_and_conditions() -> None:
    full = node("n1", "True")
    full["status"]["images"] = [{"names": ["x" * 200], "sizeBytes": 1}] * 50
    full["metadata"]["labels"] = {"kubernetes.io/hostname": "n1"}
    assert node_essentials(full) == node("n1", "True")
