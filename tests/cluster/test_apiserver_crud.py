"""The emulated apiserver through the official kubernetes client: the verbs and their metadata."""

from __future__ import annotations

import threading
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException

from tests.cluster.apiserver import ApiServer
from tests.cluster.waiting import wait_until

G, V, P = "test.kubelambda.dev", "v1", "widgets"


def widget(name: str, size: int = 3, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels} if labels else {"name": name}
    return {"apiVersion": f"{G}/{V}", "kind": "Widget", "metadata": meta, "spec": {"size": size}}


def test_namespaces_are_served_and_core_discovery_is_v1(
    core: kubernetes.client.CoreV1Api, k8s_client: kubernetes.client.ApiClient
) -> None:
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {"default", "kube-system"} <= names
    assert core.read_namespace("default").metadata.uid
    resources = core.get_api_resources()
    assert resources.group_version == "v1"
    assert {"pods", "pods/status", "namespaces", "configmaps"} <= {
        r.name for r in resources.resources
    }
    groups = kubernetes.client.ApisApi(k8s_client).get_api_versions().groups
    assert "test.kubelambda.dev" in {g.name for g in groups}


def test_create_fills_metadata_and_answers_201(custom: kubernetes.client.CustomObjectsApi) -> None:
    obj, status, _ = custom.create_namespaced_custom_object_with_http_info(
        G, V, "default", P, widget("a")
    )
    assert status == 201
    meta = obj["metadata"]
    assert meta["namespace"] == "default"
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0
    assert obj["spec"] == {"size": 3, "color": "red"}  # the schema's default is applied


def test_generate_name(core: kubernetes.client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map("default", {"metadata": {"generateName": "cfg-"}})
    assert cm.metadata.name.startswith("cfg-") and len(cm.metadata.name) == len("cfg-") + 5


def test_duplicate_create_is_409_and_missing_namespace_404(
    core: kubernetes.client.CoreV1Api,
) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    assert exc.value.status == 409 and "AlreadyExists" in exc.value.body
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert exc.value.status == 404


def test_get_list_and_list_resource_version(custom: kubernetes.client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(G, V, "default", P, widget("a"))
    created = custom.create_namespaced_custom_object(G, V, "default", P, widget("b"))
    listing = custom.list_namespaced_custom_object(G, V, "default", P)
    assert [i["metadata"]["name"] for i in listing["items"]] == ["a", "b"]
    assert int(listing["metadata"]["resourceVersion"]) >= int(
        created["metadata"]["resourceVersion"]
    )
    assert (
        custom.get_namespaced_custom_object(G, V, "default", P, "b")["metadata"]["uid"]
        == created["metadata"]["uid"]
    )
    with pytest.raises(ApiException) as exc:
        custom.get_namespaced_custom_object(G, V, "default", P, "zzz")
    assert exc.value.status == 404


def test_merge_patch_bumps_generation_only_on_spec_changes(
    custom: kubernetes.client.CustomObjectsApi,
) -> None:
    created = custom.create_namespaced_custom_object(G, V, "default", P, widget("a"))
    labelled = custom.patch_namespaced_custom_object(
        G, V, "default", P, "a", {"metadata": {"labels": {"k": "v"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    assert int(labelled["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"]
    )
    resized = custom.patch_namespaced_custom_object(G, V, "default", P, "a", {"spec": {"size": 5}})
    assert resized["metadata"]["generation"] == 2 and resized["spec"]["size"] == 5
    same = custom.patch_namespaced_custom_object(G, V, "default", P, "a", {"spec": {"size": 5}})
    assert same["metadata"]["resourceVersion"] == resized["metadata"]["resourceVersion"]  # no-op


def test_json_patch_and_failed_test_op_is_422(core: kubernetes.client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "c"}, "data": {"a": "1"}}
    )
    rv = cm.metadata.resource_version
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/data/b", "value": "2"},
    ]
    patched = core.patch_namespaced_config_map("c", "default", ops)
    assert patched.data == {"a": "1", "b": "2"}
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_config_map("c", "default", ops)  # rv is stale now
    assert exc.value.status == 422


def test_replace_and_stale_resource_version_is_409(core: kubernetes.client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "c"}, "data": {"a": "1"}}
    )
    cm.data = {"a": "2"}
    replaced = core.replace_namespaced_config_map("c", "default", cm)
    assert replaced.data == {"a": "2"}
    cm.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("c", "default", cm)
    assert exc.value.status == 409 and "the object has been modified" in exc.value.body
    stale = {"metadata": {"resourceVersion": cm.metadata.resource_version}, "data": {"a": "4"}}
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_config_map("c", "default", stale)
    assert exc.value.status == 409


def test_delete(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    core.delete_namespaced_config_map("c", "default")
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("c", "default")
    assert exc.value.status == 404
    with pytest.raises(ApiException) as exc:
        core.delete_namespaced_config_map("c", "default")
    assert exc.value.status == 404


def test_secret_string_data_is_encoded(core: kubernetes.client.CoreV1Api) -> None:
    secret = core.create_namespaced_secret(
        "default", {"metadata": {"name": "s"}, "stringData": {"k": "v"}}
    )
    assert secret.data == {"k": "dg=="} and not secret.string_data


def test_watch_streams_changes_from_a_list_resource_version(
    custom: kubernetes.client.CustomObjectsApi,
) -> None:
    custom.create_namespaced_custom_object(G, V, "default", P, widget("old"))
    rv = custom.list_namespaced_custom_object(G, V, "default", P)["metadata"]["resourceVersion"]
    events: list[tuple[str, str]] = []
    started = threading.Event()

    def consume() -> None:
        watch = kubernetes.watch.Watch()
        started.set()
        for event in watch.stream(
            custom.list_namespaced_custom_object,
            G,
            V,
            "default",
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
    custom.create_namespaced_custom_object(G, V, "default", P, widget("new"))
    custom.patch_namespaced_custom_object(G, V, "default", P, "new", {"spec": {"size": 4}})
    custom.delete_namespaced_custom_object(G, V, "default", P, "new")
    thread.join(timeout=10)
    # Resuming from the list's resourceVersion replays exactly what came after it: not "old".
    assert events == [("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "new")]


def test_watch_from_a_compacted_resource_version_is_410(tmp_path: Any) -> None:
    with ApiServer(tmp_path) as server:
        server.emulator.store.log = type(server.emulator.store.log)(maxlen=2)
        client = kubernetes.config.new_client_from_config(str(server.kubeconfig))
        core = kubernetes.client.CoreV1Api(client)
        for i in range(4):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        with pytest.raises(ApiException) as exc:
            for _ in kubernetes.watch.Watch().stream(
                core.list_namespaced_config_map, "default", resource_version="1", timeout_seconds=2
            ):
                pass
        assert exc.value.status == 410


def test_fault_injection_through_kmock_reactions(
    apiserver: ApiServer, core: kubernetes.client.CoreV1Api
) -> None:
    apiserver.emulator["post /api/v1/namespaces/default/configmaps"] << 503
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    assert exc.value.status == 503
    wait_until(lambda: not core.list_namespaced_config_map("default").items or None, timeout=1)


def test_dry_run_paging_and_delete_collection(core: kubernetes.client.CoreV1Api) -> None:
    dry = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "ghost"}}, dry_run="All"
    )
    assert dry.metadata.name == "ghost"
    assert not core.list_namespaced_config_map("default").items
    for i in range(5):
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": f"c{i}", "labels": {"n": str(i % 2)}}}
        )
    first = core.list_namespaced_config_map("default", limit=2)
    rest = core.list_namespaced_config_map("default", limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in first.items + rest.items] == [f"c{i}" for i in range(5)]
    assert rest.metadata._continue is None
    core.delete_collection_namespaced_config_map("default", label_selector="n=0")
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == [
        "c1",
        "c3",
    ]
