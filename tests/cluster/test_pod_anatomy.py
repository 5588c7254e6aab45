"""The function pod on a real cluster (issue 16): big ConfigMap code on provisioned pods, cold
nodes whose runtime image takes 40 s to pull, probes that never kill a pod still warming up.

The real control plane, the real `kubelambda operator` and `kubelambda gateway --cluster`, the
process kubelet as the node (its simulated image pull is the cold node), boto3 as the client.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from kubelambda.kube import contract as c
from kubelambda.runtime.spec import EnvironmentSpec
from tests.cluster.harness.cluster import Cluster
from tests.cluster.lambda_stack import RUNTIME, LambdaStack, running_stack

ANNOTATION_CAP = 256 * 1024  # the apiserver's limit on a pod's annotations, together


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, lambda_crds: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaStack]:
    with running_stack(cluster, tmp_path_factory.mktemp("anatomy"), warm=1) as running:
        yield running


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_900_kib_configmap_function_gets_provisioned_pods_that_serve_it(
    stack: LambdaStack,
) -> None:
    blob = os.urandom(900 * 1024)  # incompressible: the zip is as big as its content
    handler = (
        "import hashlib, pathlib\n\n"
        "def handler(event, context):\n"
        "    data = (pathlib.Path(__file__).parent / 'blob.bin').read_bytes()\n"
        "    return {'size': len(data), 'sha': hashlib.sha256(data).hexdigest()}\n"
    )
    archive = _zip({"app.py": handler.encode(), "blob.bin": blob})
    assert len(archive) > 900 * 1024
    configmap = {
        "metadata": {"name": "big-code"},
        "binaryData": {"code.zip": base64.b64encode(archive).decode()},
    }
    stack.core.create_namespaced_config_map(stack.ns, configmap)
    spec = {
        "runtime": RUNTIME,
        "handler": "app.handler",
        "code": {"configMap": {"name": "big-code", "key": "code.zip"}},
    }
    stack.apply("functions", "big", spec)
    status = stack.wait_state("functions", "big", "Active")["status"]
    assert status["codeSha256"] == hashlib.sha256(archive).hexdigest()
    stack.apply("versions", "big-v1", {"functionName": "big"})
    stack.wait_state("versions", "big-v1", "Active")
    alias = {"functionName": "big", "name": "live", "functionVersion": "1"}
    stack.apply("aliases", "big-live", {**alias, "provisionedConcurrency": 1})
    stack.wait_state("aliases", "big-live", "Active", timeout=90, provisionedConcurrencyReady=1)
    (pod,) = stack.live_pods("kubelambda.dev/pool=provisioned,kubelambda.dev/function=big")
    annotations = pod.metadata.annotations
    assert sum(len(k) + len(v) for k, v in annotations.items()) < ANNOTATION_CAP // 16
    carried = EnvironmentSpec.model_validate_json(annotations[c.SPEC]).code
    assert carried.zip_base64 is None and carried.path == "code/0/code.zip"
    volume = next(v for v in pod.spec.volumes if v.name == "spec")
    assert [s.config_map.name for s in volume.projected.sources if s.config_map] == ["big-code"]
    stack.wait_servable("big", "live")
    response = stack.invoke("big", Qualifier="live")
    assert response["body"] == {"size": len(blob), "sha": hashlib.sha256(blob).hexdigest()}
    assert len(stack.live_pods("kubelambda.dev/function=big")) == 1, "the provisioned pod served"
