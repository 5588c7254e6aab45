"""The real kube-apiserver through the official kubernetes client: the verbs and their metadata."""

from __future__ import annotations

import threading
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException

from tests.cluster.harness.cluster import Cluster

G, V, P = "test.kubelambda.dev", "v1", "widgets"


def widget(name: str, size: int = 3, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels} if labels else {"name": name}
    return {"apiVersion": f"{G}/{V}", "kind": "Widget", "metadata": meta, "spec": {"size": size}}


def test_namespaces_are_served_and_core_discovery_is_v1(
    core: kubernetes.client.CoreV1Api, k8s_client: kubernetes.client.ApiClient
) -> None:
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {"default", "kube-system", "kube-node-lease"} <= names
    assert core.read_namespace("default").metadata.uid
    resources = core.get_api_resources()
    assert resources.group_version == "v1"
    assert {"pods", "pods/status", "namespaces", "configmaps"} <= {
        r.name for r in resources.resources
    }
    groups = kubernetes.client.ApisApi(k8s_client).get_api_versions().groups
    assert "test.kubelambda.dev" in {g.name for g in groups}


def test_create_fills_metadata_and_answers_201(
    custom: kubernetes.client.CustomObjectsApi, namespace: str
) -> None:
    obj, status, _ = custom.create_namespaced_custom_object_with_http_info(
        G, V, namespace, P, widget("a")
    )
    assert status == 201
    meta = obj["metadata"]
    assert meta["namespace"] == namespace
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0
    assert obj["spec"] == {"size": 3, "color": "red"}  # the schema's default is applied


def test_generate_name(core: kubernetes.client.CoreV1Api, namespace: str) -> None:
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "cfg-"}})
    assert cm.metadata.name.startswith("cfg-") and len(cm.metadata.name) == len("cfg-") + 5


def test_duplicate_create_is_409_and_missing_namespace_404(
    core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "x"}})
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "x"}})
    assert exc.value.status == 409 and "AlreadyExists" in exc.value.body
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert exc.value.status == 404


def test_get_list_and_list_resource_version(
    custom: kubernetes.client.CustomObjectsApi, namespace: str
) -> None:
    custom.create_namespaced_custom_object(G, V, namespace, P, widget("a"))
    created = custom.create_namespaced_custom_object(G, V, namespace, P, widget("b"))
    listing = custom.list_namespaced_custom_object(G, V, namespace, P)
    assert [i["metadata"]["name"] for i in listing["items"]] == ["a", "b"]
    assert int(listing["metadata"]["resourceVersion"]) >= int(
        created["metadata"]["resourceVersion"]
    )
    assert (
        custom.get_namespaced_custom_object(G, V, namespace, P, "b")["metadata"]["uid"]
        == created["metadata"]["uid"]
    )
    with pytest.raises(ApiException) as exc:
        custom.get_namespaced_custom_object(G, V, namespace, P, "zzz")
    assert exc.value.status == 404


def test_merge_patch_bumps_generation_only_on_spec_changes(
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
) -> None:
    created = custom.create_namespaced_custom_object(G, V, namespace, P, widget("a"))
    labelled = custom.patch_namespaced_custom_object(
        G, V, namespace, P, "a", {"metadata": {"labels": {"k": "v"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    assert int(labelled["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"]
    )
    resized = custom.patch_namespaced_custom_object(G, V, namespace, P, "a", {"spec": {"size": 5}})
    assert resized["metadata"]["generation"] == 2 and resized["spec"]["size"] == 5
    same = custom.patch_namespaced_custom_object(G, V, namespace, P, "a", {"spec": {"size": 5}})
    assert same["metadata"]["resourceVersion"] == resized["metadata"]["resourceVersion"]  # no-op


def test_json_patch_and_failed_test_op_is_422(
    core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    cm = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "c"}, "data": {"a": "1"}}
    )
    rv = cm.metadata.resource_version
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/data/b", "value": "2"},
    ]
    patched = core.patch_namespaced_config_map("c", namespace, ops)
    assert patched.data == {"a": "1", "b": "2"}
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_config_map("c", namespace, ops)  # rv is stale now
    assert exc.value.status == 422


def test_replace_and_stale_resource_version_is_409(
    core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    cm = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "c"}, "data": {"a": "1"}}
    )
    cm.data = {"a": "2"}
    replaced = core.replace_namespaced_config_map("c", namespace, cm)
    assert replaced.data == {"a": "2"}
    cm.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("c", namespace, cm)
    assert exc.value.status == 409 and "the object has been modified" in exc.value.body
    stale = {"metadata": {"resourceVersion": cm.metadata.resource_version}, "data": {"a": "4"}}
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_config_map("c", namespace, stale)
    assert exc.value.status == 409


def test_delete(core: kubernetes.client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}})
    core.delete_namespaced_config_map("c", namespace)
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("c", namespace)
    assert exc.value.status == 404
    with pytest.raises(ApiException) as exc:
        core.delete_namespaced_config_map("c", namespace)
    assert exc.value.status == 404


def test_secret_string_data_is_encoded(core: kubernetes.client.CoreV1Api, namespace: str) -> None:
    secret = core.create_namespaced_secret(
        namespace, {"metadata": {"name": "s"}, "stringData": {"k": "v"}}
    )
    assert secret.data == {"k": "dg=="} and not secret.string_data


def test_watch_streams_changes_from_a_list_resource_version(
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
) -> None:
    custom.create_namespaced_custom_object(G, V, namespace, P, widget("old"))
    rv = custom.list_namespaced_custom_object(G, V, namespace, P)["metadata"]["resourceVersion"]
    events: list[tuple[str, str]] = []
    started = threading.Event()

    def consume() -> None:
        watch = kubernetes.watch.Watch()
        started.set()
        for event in watch.stream(
            custom.list_namespaced_custom_object,
            G,
            V,
            namespace,
            P,
            resource_version=rv,
            timeout_seconds=5,
        ):
            events.append((event["type"], event["object"]["metadata"]["name"]))
            if event["type"] == "DELETED":
                watch.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    started.wait()
    custom.create_namespaced_custom_object(G, V, namespace, P, widget("new"))
    custom.patch_namespaced_custom_object(G, V, namespace, P, "new", {"spec": {"size": 4}})
    custom.delete_namespaced_custom_object(G, V, namespace, P, "new")
    thread.join(timeout=10)
    # Resuming from the list's resourceVersion replays exactly what came after it: not "old".
    assert events == [("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "new")]


TEMPLATE = {"containers": [{"name": "c", "image": "python:3.12"}]}


def test_watch_from_a_compacted_resource_version_is_410(
    cluster: Cluster, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    # PodTemplates are served without the watch cache (see the harness), so this watch is
    # etcd's; the watch cache keeps its own window, which a compaction does not shorten.
    old = core.create_namespaced_pod_template(
        namespace, {"metadata": {"name": "t0"}, "template": {"spec": TEMPLATE}}
    )
    for i in range(1, 4):
        core.create_namespaced_pod_template(
            namespace, {"metadata": {"name": f"t{i}"}, "template": {"spec": TEMPLATE}}
        )
    cluster.control.compact()
    with pytest.raises(ApiException) as exc:
        for _ in kubernetes.watch.Watch().stream(
            core.list_namespaced_pod_template,
            namespace,
            resource_version=old.metadata.resource_version,
            timeout_seconds=5,
        ):
            pass
    assert exc.value.status == 410


def test_dry_run_paging_and_delete_collection(
    core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    dry = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "ghost"}}, dry_run="All"
    )
    assert dry.metadata.name == "ghost"
    assert not _ours(core.list_namespaced_config_map(namespace).items)
    for i in range(5):
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": f"c{i}", "labels": {"n": str(i % 2)}}}
        )
    first = core.list_namespaced_config_map(namespace, limit=2)
    rest = core.list_namespaced_config_map(namespace, limit=10, _continue=first.metadata._continue)
    assert _ours(first.items + rest.items) == [f"c{i}" for i in range(5)]
    assert rest.metadata._continue is None
    core.delete_collection_namespaced_config_map(namespace, label_selector="n=0")
    assert _ours(core.list_namespaced_config_map(namespace).items) == [
        "c1",
        "c3",
    ]


def _ours(items: list[Any]) -> list[str]:
    """Names of the test's ConfigMaps (every namespace also holds kube-root-ca.crt)."""
    return [c.metadata.name for c in items if c.metadata.name != "kube-root-ca.crt"]
