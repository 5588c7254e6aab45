"""A version's publication settles the aliases waiting for it (`handlers.wake_aliases`), on the
real apiserver and with no operator running, so no kopf retry can settle them first: only the
wake can move an alias out of Pending here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubelambda.kube.client import KubeApi, collection
from kubelambda.operator.config import OperatorConfig
from kubelambda.operator.handlers import Runtime, wake_aliases
from tests.cluster.harness.cluster import Cluster
from tests.cluster.lambda_stack import RUNTIME, admin_api, handler_code

GROUP, VERSION = "kubelambda.dev", "v1alpha1"


@pytest.fixture
async def api(cluster: Cluster, lambda_crds: list[Any]) -> AsyncIterator[KubeApi]:
    client = admin_api(cluster)
    yield client
    await client.close()


async def _create(
    api: KubeApi, ns: str, plural: str, name: str, spec: dict[str, Any], status: dict[str, Any]
) -> dict[str, Any]:
    kind = {"functions": "Function", "versions": "Version", "aliases": "Alias"}[plural]
    path = collection(GROUP, VERSION, plural, ns)
    doc = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }
    await api.create(path, doc)
    return await api.patch(f"{path}/{name}/status", {"status": status})


async def _state(api: KubeApi, ns: str, name: str) -> dict[str, Any]:
    doc = await api.get(collection(GROUP, VERSION, "aliases", ns) + f"/{name}")
    return dict(doc.get("status") or {})


async def test_a_publication_settles_the_aliases_waiting_for_it_and_no_others(
    api: KubeApi, namespace: str
) -> None:
    code = {"runtime": RUNTIME, "handler": "app.handler", "code": {"inline": handler_code("1")}}
    function = await _create(api, namespace, "functions", "pub", code, {"state": "Active"})
    await _create(api, namespace, "functions", "other", code, {"state": "Active"})
    await _create(
        api, namespace, "versions", "pub-v1", {"functionName": "pub"}, {"state": "Active"}
    )
    waiting = {"state": "Pending", "stateReason": "spec.functionVersion: version 1 not found"}
    await _create(
        api, namespace, "aliases", "ready", {"functionName": "pub", "functionVersion": "1"}, waiting
    )
    await _create(
        api, namespace, "aliases", "early", {"functionName": "pub", "functionVersion": "2"}, waiting
    )
    await _create(
        api,
        namespace,
        "aliases",
        "elsewhere",
        {"functionName": "other", "functionVersion": "1"},
        waiting,
    )
    # Published only once the aliases wait, as the version handler does before it wakes them.
    await api.patch(
        collection(GROUP, VERSION, "versions", namespace) + "/pub-v1/status",
        {"status": {"state": "Active", "version": 1}},
    )

    runtime = Runtime(config=OperatorConfig(agent_image="agent", namespaces=(namespace,)))
    settled = await wake_aliases(runtime, api, namespace, "pub")

    assert settled == ["ready"]
    ready = await _state(api, namespace, "ready")
    assert ready["state"] == "Active" and ready["routing"] == "1=100%", ready
    assert (await _state(api, namespace, "early"))["state"] == "Pending"
    assert (await _state(api, namespace, "elsewhere"))["state"] == "Pending"
    owner = (await api.get(collection(GROUP, VERSION, "aliases", namespace) + "/ready"))[
        "metadata"
    ]["ownerReferences"][0]
    assert owner["uid"] == function["metadata"]["uid"]

    # A second wake finds nothing waiting that it can settle.
    assert await wake_aliases(runtime, api, namespace, "pub") == []
