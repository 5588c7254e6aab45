"""`LambdaStack` on a real cluster: the same scenarios as tests/cluster, against kind.

`make kind-e2e` creates the cluster, installs the chart and exports `KUBELAMBDA_E2E_*` (see
scripts/kind-e2e.sh). Here the operator and the gateway are the chart's Deployments, the pods are
real pods, and the client reaches the gateway through `kubectl port-forward`. What the harness
stack does by reaching into its own processes is done the cluster's way: a pod is killed by a
forced delete; a scenario that needs a second gateway it can address, or the agent's control API
on a pod IP, is skipped with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.cluster.lambda_stack import NS, LambdaStack


def e2e_settings() -> dict[str, str] | None:
    """The settings kind-e2e.sh exports, or None when not running under it."""
    if os.environ.get("KUBELAMBDA_E2E") != "kind":
        return None
    keys = ("KUBECONFIG", "CONTEXT", "GATEWAY_URL", "RELEASE", "RELEASE_NAMESPACE")
    return {k: os.environ[f"KUBELAMBDA_E2E_{k}"] for k in keys}


class KindStack(LambdaStack):
    def __init__(self, workdir: Path, settings: dict[str, str], *, warm: int = 2) -> None:
        # The parent's harness cluster, kubelet and subprocesses are not used on kind.
        self.workdir = workdir
        self.cluster = None
        self.ns = NS
        self.warm = warm
        self.lease = 60.0
        self.settings = settings
        self.kubelet = None
        self.operator = None
        self.gateways = {"gw-a": (None, settings["GATEWAY_URL"])}  # type: ignore[dict-item]
        self.client = None

    def start(self) -> None:
        self.client = kubernetes.config.new_client_from_config(
            self.settings["KUBECONFIG"], context=self.settings["CONTEXT"]
        )
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.custom = kubernetes.client.CustomObjectsApi(self.client)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()

    def logs(self) -> str:
        namespace = self.settings["RELEASE_NAMESPACE"]
        parts = []
        for pod in self.core.list_namespaced_pod(
            namespace, label_selector="app.kubernetes.io/part-of=kubelambda"
        ).items:
            text = self.core.read_namespaced_pod_log(pod.metadata.name, namespace, tail_lines=100)
            parts.append(f"--- {pod.metadata.name} ---\n{text}")
        return "\n".join(parts)

    def kill_pod(self, name: str) -> None:
        self.core.delete_namespaced_pod(name, NS, grace_period_seconds=0)

    def agent_state(self, name: str) -> dict[str, Any]:
        pytest.skip("reading an agent's control API needs the pod network; not from the host")

    def start_gateway(self, identity: str) -> str:
        pytest.skip("needs a second gateway replica the test can address on its own")
