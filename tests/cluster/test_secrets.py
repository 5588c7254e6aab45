"""environment.secretKeyRefs in cluster mode, on the real control plane with the real operator and
gateway: the gateway reads the Kubernetes Secret and the function gets the value, which appears
in no log line, no status, no pod (spec, annotations, container env) and no API response."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.lambda_stack import LambdaStack, handler_code, running_stack

VALUE = "cluster-tok-41d7a2-never-printed"


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, lambda_crds: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaStack]:
    with running_stack(cluster, tmp_path_factory.mktemp("stack")) as running:
        yield running


def test_a_function_reads_a_kubernetes_secret_and_nothing_shows_it(stack: LambdaStack) -> None:
    stack.core.create_namespaced_secret(
        stack.ns,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name="api"), string_data={"token": VALUE}
        ),
    )
    body = (
        '{"sha256": __import__("hashlib").sha256(os.environ["API_TOKEN"].encode()).hexdigest(), '
        '"plain": os.environ["PLAIN"]}'
    )
    stack.function(
        "reader",
        handler_code(body),
        environment={
            "variables": {"PLAIN": "visible"},
            "secretKeyRefs": {"API_TOKEN": {"name": "api", "key": "token"}},
        },
    )
    status = stack.wait_state("functions", "reader", "Active")
    stack.wait_servable("reader")
    response = stack.invoke("reader", {}, LogType="Tail")
    assert response["StatusCode"] == 200, stack.logs()
    assert response["body"] == {
        "sha256": hashlib.sha256(VALUE.encode()).hexdigest(),
        "plain": "visible",
    }
    client = stack.lambda_client()
    answers = [
        json.dumps({k: v for k, v in response.items() if k != "Payload"}, default=str),
        json.dumps(client.get_function(FunctionName="reader"), default=str),
        json.dumps(client.get_function_configuration(FunctionName="reader"), default=str),
        json.dumps(client.list_functions(), default=str),
    ]
    url = f"{stack.gateways['gw-a'][1]}/kubelambda/v1/functions/reader/logs"
    with urllib.request.urlopen(url, timeout=10) as logs:
        answers.append(logs.read().decode())
    assert "START RequestId" in answers[-1]
    pods = stack.core.list_namespaced_pod(stack.ns)
    pod_text = json.dumps(stack.client.sanitize_for_serialization(pods))  # type: ignore[union-attr]
    container_logs = [
        stack.kubelet.log(stack.ns, p.metadata.name, c.name)  # type: ignore[union-attr]
        for p in pods.items
        for c in p.spec.containers
    ]
    for text in [stack.logs(), json.dumps(status), pod_text, *answers, *container_logs]:
        assert VALUE not in text
