"""Smoke test of the whole ground: the real kopf operator, the real apiserver, the kubelet.

A minimal kopf handler (defined here, in its own registry) creates a child Pod for each Widget
and records the pod's name in the Widget's status; a second handler copies the pod's IP into the
Widget's status once the pod reports one. The kubelet runs the pod (`python -m http.server` on
its pod IP), and the test sees it Ready and serving on that IP.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import kopf
import kopf.testing
import kubernetes

from tests.cluster.harness.kubelet import Kubelet
from tests.cluster.harness.waiting import wait_gone, wait_pod_ready, wait_until

GROUP, VERSION, PLURAL = "test.kubelambda.dev", "v1", "widgets"


def make_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    # A fresh registry has no login handler: read the KUBECONFIG the fixture points at.
    kopf.on.login(registry=registry)(kopf.login_with_kubeconfig)

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def create_pod(name: str, namespace: str, spec: Any, body: Any, patch: Any, **_: Any) -> None:
        port = 8000 + int(spec["size"])
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{name}-web", "labels": {"widget": name}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "python:3.12",
                        "command": ["python", "-m", "http.server", str(port), "--bind", "0.0.0.0"],
                        "ports": [{"containerPort": port}],
                        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1},
                    }
                ]
            },
        }
        kopf.adopt(pod, owner=body)
        kubernetes.client.CoreV1Api().create_namespaced_pod(namespace, pod)
        patch.status["phase"] = "Creating"
        patch.status["podName"] = pod["metadata"]["name"]

    @kopf.on.field(
        "v1", "pods", field="status.podIP", labels={"widget": kopf.PRESENT}, registry=registry
    )
    def pod_ip(new: Any, namespace: str, labels: Any, **_: Any) -> None:
        if new:
            status = {"status": {"phase": "Running", "podIP": new}}
            kubernetes.client.CustomObjectsApi().patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, labels["widget"], status
            )

    return registry


def test_kopf_operator_runs_a_child_pod(
    kubelet: Kubelet,
    kubeconfig: Path,
    core: kubernetes.client.CoreV1Api,
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
) -> None:
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = 30  # watches end server-side, so kopf stops promptly
    settings.posting.enabled = False  # the k8s events of handlers are noise here
    args = ["run", "--standalone", f"--namespace={namespace}", "--verbose"]
    with kopf.testing.KopfRunner(
        args, registry=make_registry(), settings=settings, timeout=30
    ) as runner:
        widget = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Widget",
            "metadata": {"name": "alpha"},
            "spec": {"size": 3},
        }
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget)

        def running() -> Any:
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "alpha")
            return obj if obj.get("status", {}).get("podIP") else None

        obj = wait_until(running, timeout=20, what="the Widget's status to carry its pod's IP")
        assert obj["status"]["podName"] == "alpha-web"
        pod = wait_pod_ready(core, namespace, "alpha-web")
        assert pod.metadata.owner_references[0].uid == obj["metadata"]["uid"]
        assert obj["status"]["podIP"] == pod.status.pod_ip
        with urllib.request.urlopen(f"http://{pod.status.pod_ip}:8003/", timeout=5) as response:
            assert response.status == 200

        # Deleting the Widget garbage-collects its pod, and the kubelet stops the process.
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "alpha")
        wait_gone(lambda: core.read_namespaced_pod("alpha-web", namespace), timeout=60)
    assert runner.exit_code == 0, runner.output
    assert "create_pod' succeeded" in runner.output
