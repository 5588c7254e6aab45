"""The real apiserver's semantics our components rely on: status isolation, selectors,
finalizers, garbage collection by the real controller-manager, schemas."""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client import ApiException

from tests.cluster.harness.controlplane import REPO
from tests.cluster.harness.waiting import wait_gone, wait_until

G, V, P = "test.kubelambda.dev", "v1", "widgets"


def widget(name: str, size: int = 3, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels} if labels else {"name": name}
    return {"apiVersion": f"{G}/{V}", "kind": "Widget", "metadata": meta, "spec": {"size": size}}


def test_status_subresource_is_isolated(
    custom: kubernetes.client.CustomObjectsApi, namespace: str
) -> None:
    created = custom.create_namespaced_custom_object(
        G, V, namespace, P, {**widget("a"), "status": {"phase": "ignored"}}
    )
    assert "status" not in created  # status is the controller's: dropped on create
    body = {"spec": {"size": 9}, "status": {"phase": "Ready"}}
    after_status = custom.patch_namespaced_custom_object_status(G, V, namespace, P, "a", body)
    assert after_status["status"] == {"phase": "Ready"} and after_status["spec"]["size"] == 3
    assert after_status["metadata"]["generation"] == 1
    after_main = custom.patch_namespaced_custom_object(
        G, V, namespace, P, "a", {"status": {"phase": "Lost"}, "spec": {"size": 4}}
    )
    assert after_main["status"] == {"phase": "Ready"} and after_main["spec"]["size"] == 4


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a", "b"]),
        ("tier==web,env!=prod", ["a"]),
        ("env in (prod,stage)", ["b", "c"]),
        ("env notin (prod)", ["a", "c", "d"]),
        ("env", ["a", "b", "c"]),
        ("!env", ["d"]),
    ],
)
def test_label_selectors_on_list(
    custom: kubernetes.client.CustomObjectsApi, selector: str, expected: list[str], namespace: str
) -> None:
    for name, labels in {
        "a": {"tier": "web", "env": "dev"},
        "b": {"tier": "web", "env": "prod"},
        "c": {"tier": "db", "env": "stage"},
        "d": {"tier": "db"},
    }.items():
        custom.create_namespaced_custom_object(
            G, V, namespace, P, {**widget(name), "metadata": {"name": name, "labels": labels}}
        )
    items = custom.list_namespaced_custom_object(G, V, namespace, P, label_selector=selector)[
        "items"
    ]
    assert [i["metadata"]["name"] for i in items] == expected


def test_field_selectors_on_list(core: kubernetes.client.CoreV1Api, namespace: str) -> None:
    for name in ("a", "b"):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name}})
    assert [
        c.metadata.name
        for c in core.list_config_map_for_all_namespaces(field_selector="metadata.name=b").items
    ] == ["b"]
    assert [
        c.metadata.name
        for c in core.list_namespaced_config_map(namespace, field_selector="metadata.name!=b").items
        if c.metadata.name != "kube-root-ca.crt"
    ] == ["a"]
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_config_map(namespace, field_selector="data.x=1")
    assert exc.value.status == 400


def test_selectors_on_watch_turn_leaving_objects_into_deletions(
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
) -> None:
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
            label_selector="team=a",
            timeout_seconds=5,
        ):
            events.append((event["type"], event["object"]["metadata"]["name"]))
            if len(events) == 3:
                watch.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    started.wait()
    custom.create_namespaced_custom_object(G, V, namespace, P, widget("other", team="b"))
    custom.create_namespaced_custom_object(G, V, namespace, P, widget("mine", team="a"))
    custom.patch_namespaced_custom_object(
        G, V, namespace, P, "other", {"metadata": {"labels": {"team": "a"}}}
    )
    custom.patch_namespaced_custom_object(
        G, V, namespace, P, "mine", {"metadata": {"labels": {"team": "c"}}}
    )
    thread.join(timeout=10)
    assert events == [("ADDED", "mine"), ("ADDED", "other"), ("DELETED", "mine")]


def test_finalizers_hold_deletion_until_removed(
    core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "c", "finalizers": ["test/hold"]}}
    )
    core.delete_namespaced_config_map("c", namespace)
    held = core.read_namespaced_config_map("c", namespace)
    assert held.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as exc:  # no new finalizers on an object being deleted
        core.patch_namespaced_config_map(
            "c", namespace, {"metadata": {"finalizers": ["test/hold", "x/y"]}}
        )
    assert exc.value.status == 422
    core.patch_namespaced_config_map("c", namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("c", namespace)
    assert exc.value.status == 404


def test_owner_references_cascade_in_the_background(
    core: kubernetes.client.CoreV1Api,
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
) -> None:
    owner = custom.create_namespaced_custom_object(G, V, namespace, P, widget("owner"))
    ref = {
        "apiVersion": f"{G}/{V}",
        "kind": "Widget",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "child", "ownerReferences": [ref]}}
    )
    cm_ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "child",
        "uid": core.read_namespaced_config_map("child", namespace).metadata.uid,
    }
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "grandchild", "ownerReferences": [cm_ref]}}
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "bystander"}})
    custom.delete_namespaced_custom_object(G, V, namespace, P, "owner")
    # The garbage collector learns of a new CRD at its next discovery resync (30 s).
    wait_gone(lambda: core.read_namespaced_config_map("child", namespace), timeout=60)
    wait_gone(lambda: core.read_namespaced_secret("grandchild", namespace), timeout=30)
    assert core.read_namespaced_config_map("bystander", namespace)


def test_orphan_propagation_keeps_dependents(
    core: kubernetes.client.CoreV1Api,
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
) -> None:
    owner = custom.create_namespaced_custom_object(G, V, namespace, P, widget("owner"))
    ref = {
        "apiVersion": f"{G}/{V}",
        "kind": "Widget",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "child", "ownerReferences": [ref]}}
    )
    custom.delete_namespaced_custom_object(G, V, namespace, P, "owner", propagation_policy="Orphan")
    # The garbage collector orphans the dependents, then lets the owner go.
    wait_gone(lambda: custom.get_namespaced_custom_object(G, V, namespace, P, "owner"), timeout=60)
    child = core.read_namespaced_config_map("child", namespace)
    assert not child.metadata.owner_references


def test_namespace_deletion_removes_its_content(core: kubernetes.client.CoreV1Api) -> None:
    scratch = f"scratch-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": scratch}})
    core.create_namespaced_config_map(scratch, {"metadata": {"name": "c"}})
    core.delete_namespace(scratch)
    wait_gone(lambda: core.read_namespace(scratch), timeout=60)
    assert not core.list_namespaced_config_map(scratch).items


def test_schema_rejects_invalid_objects_naming_the_field(
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
) -> None:
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(G, V, namespace, P, widget("big", size=11))
    assert exc.value.status == 422 and "spec.size" in exc.value.body
    bad_enum = {**widget("pink"), "spec": {"size": 1, "color": "pink"}}
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(G, V, namespace, P, bad_enum)
    assert (
        exc.value.status == 422
        and "spec.color" in exc.value.body
        and "Unsupported value" in exc.value.body
    )
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(G, V, namespace, P, {**widget("x"), "spec": {}})
    assert exc.value.status == 422 and "spec.size: Required value" in exc.value.body
    custom.create_namespaced_custom_object(G, V, namespace, P, widget("ok"))
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(G, V, namespace, P, "ok", {"spec": {"size": 0}})
    assert exc.value.status == 422 and "spec.size" in exc.value.body


def test_unknown_fields_are_pruned_or_rejected_when_strict(
    custom: kubernetes.client.CustomObjectsApi,
    k8s_client: kubernetes.client.ApiClient,
    namespace: str,
) -> None:
    body = {**widget("a"), "spec": {"size": 1, "bogus": True, "extra": {"free": 1}}}
    created = custom.create_namespaced_custom_object(G, V, namespace, P, body)
    assert created["spec"] == {"size": 1, "color": "red", "extra": {"free": 1}}
    body["metadata"]["name"] = "b"
    with pytest.raises(ApiException) as exc:
        k8s_client.call_api(
            f"/apis/{G}/{V}/namespaces/default/{P}",
            "POST",
            query_params=[("fieldValidation", "Strict")],
            body=body,
            header_params={"Content-Type": "application/json"},
            _preload_content=False,
        )
    assert exc.value.status == 400
    assert 'unknown field "spec.bogus"' in json.loads(exc.value.body)["message"]


def test_self_equals_old_self_transition_rule(
    custom: kubernetes.client.CustomObjectsApi, namespace: str
) -> None:
    custom.create_namespaced_custom_object(
        G, V, namespace, P, {**widget("a"), "spec": {"size": 1, "serial": "s1"}}
    )
    custom.patch_namespaced_custom_object(G, V, namespace, P, "a", {"spec": {"size": 2}})
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(G, V, namespace, P, "a", {"spec": {"serial": "s2"}})
    assert exc.value.status == 422 and "serial is immutable" in exc.value.body


def test_our_crds_accept_the_examples(
    custom: kubernetes.client.CustomObjectsApi, namespace: str, lambda_crds: list[Any]
) -> None:
    examples = [
        doc
        for path in sorted((REPO / "examples").rglob("*.yaml"))
        for doc in yaml.safe_load_all(Path(path).read_text())
        if isinstance(doc, dict) and doc.get("apiVersion", "").startswith("kubelambda.dev/")
    ]
    if not examples:
        pytest.fail("no kubelambda.dev examples found under examples/")
    plurals = {
        "Function": "functions",
        "Version": "versions",
        "Alias": "aliases",
        "EventSourceMapping": "eventsourcemappings",
    }
    for doc in examples:
        group, version = doc["apiVersion"].split("/")
        ns = doc["metadata"].get("namespace", namespace)
        custom.create_namespaced_custom_object(group, version, ns, plurals[doc["kind"]], doc)
    wait_until(
        lambda: custom.list_namespaced_custom_object(
            "kubelambda.dev", "v1alpha1", namespace, "functions"
        )["items"]
    )


def test_foreground_deletion_waits_for_dependents(
    core: kubernetes.client.CoreV1Api,
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
) -> None:
    owner = custom.create_namespaced_custom_object(G, V, namespace, P, widget("owner"))
    ref = {
        "apiVersion": f"{G}/{V}",
        "kind": "Widget",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": True,  # what foreground deletion waits for
    }
    child = {"metadata": {"name": "child", "ownerReferences": [ref], "finalizers": ["test/hold"]}}
    core.create_namespaced_config_map(namespace, child)
    custom.delete_namespaced_custom_object(
        G, V, namespace, P, "owner", propagation_policy="Foreground"
    )
    wait_until(
        lambda: core.read_namespaced_config_map("child", namespace).metadata.deletion_timestamp,
        timeout=60,
    )
    held = custom.get_namespaced_custom_object(G, V, namespace, P, "owner")
    assert "foregroundDeletion" in held["metadata"]["finalizers"]
    core.patch_namespaced_config_map("child", namespace, {"metadata": {"finalizers": None}})
    wait_gone(lambda: custom.get_namespaced_custom_object(G, V, namespace, P, "owner"), timeout=30)
