"""A whole test cluster: the control plane plus one process kubelet, and namespaces for tests.

`Cluster.start()` starts `ControlPlane`, then the `Kubelet` (its Node), and waits until the Node
is Ready and the `default` namespace has its ServiceAccount; `stop()` stops the kubelet (its
processes die) and the control plane (by PID). `new_namespace()` makes a namespace, waits for
its `default` ServiceAccount and `kube-root-ca.crt` (the controller-manager makes both, and pods
need them), and returns its name. `add_node()` starts one more process kubelet (its own Node
and certificate) for a test that needs two nodes; `remove_node()` stops it and deletes its Node.
The pytest session fixture and `scripts/cluster-up` share it.
"""

from __future__ import annotations

import functools
import re
import secrets
import time
from pathlib import Path
from typing import Any

import kubernetes

from tests.cluster.harness.controlplane import ControlPlane
from tests.cluster.harness.kubelet import Kubelet
from tests.cluster.harness.podspec import ImageTable
from tests.cluster.harness.probes import ProbeTiming
from tests.cluster.harness.waiting import wait_until

NODE = "harness-node"


class Cluster:
    def __init__(self, workdir: Path, *, images: ImageTable | None = None) -> None:
        self.workdir = workdir
        self.control = ControlPlane(workdir / "control-plane", node_name=NODE)
        self.images = images or ImageTable.default()
        self.kubelet: Kubelet | None = None
        self.client: kubernetes.client.ApiClient | None = None
        self.lambda_crds: list[Any] = []  # set by the test session
        self.lambda_crds_error: AssertionError | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.control.admin_kubeconfig

    @property
    def url(self) -> str:
        return self.control.url

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self.control.start()
            assert self.control.pki is not None
            self.client = kubernetes.config.new_client_from_config(str(self.kubeconfig))
            # Probe periods stay short (readiness flips fast); initial delays are honoured up to
            # 10 s, so a liveness probe waits for its process to start, as on a real kubelet.
            self.kubelet = Kubelet(
                self.url,
                self.workdir / "kubelet",
                ssl_context=self.control.ssl_context(self.control.pki.node),
                images=self.images,
                node_name=NODE,
                timing=ProbeTiming(max_initial_delay=10.0, max_period=0.2),
            )
            self.kubelet.start()
            core = kubernetes.client.CoreV1Api(self.client)
            wait_until(
                lambda: _node_ready(core.read_node(NODE)),
                timeout=30,
                what=f"node {NODE} to be Ready",
            )
            self._wait_namespace_ready("default")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop()
        if self.client is not None:
            self.client.close()
            self.client = None
        self.control.stop()

    def add_node(self, name: str) -> Kubelet:
        """Another process kubelet, registered as Node `name` and Ready; `remove_node()` it."""
        assert self.control.pki is not None and self.client is not None
        first = self.kubelet
        kubelet = Kubelet(
            self.url,
            self.workdir / f"kubelet-{name}",
            ssl_context=self.control.ssl_context(self.control.pki.node_pair(name)),
            images=self.images,
            node_name=name,
            timing=ProbeTiming(max_initial_delay=10.0, max_period=0.2),
        )
        if first is not None and kubelet.subnet == first.subnet:  # distinct pod IPs
            kubelet.subnet = first.subnet % 249 + 2
        kubelet.start()
        core = kubernetes.client.CoreV1Api(self.client)
        try:
            wait_until(
                lambda: _node_ready(core.read_node(name)), timeout=30, what=f"node {name} Ready"
            )
        except BaseException:
            kubelet.stop()
            raise
        return kubelet

    def remove_node(self, kubelet: Kubelet) -> None:
        """Stop the kubelet (its processes die) and delete its Node; the pod garbage collector
        removes the pods still bound to it."""
        kubelet.stop()
        if self.client is not None:
            core = kubernetes.client.CoreV1Api(self.client)
            try:
                core.delete_node(kubelet.node_name)
            except kubernetes.client.ApiException as exc:
                if exc.status != 404:
                    raise

    def new_namespace(self, prefix: str = "t", labels: dict[str, str] | None = None) -> str:
        assert self.client is not None
        stem = re.sub(r"[^a-z0-9-]+", "-", prefix.lower())[:40].strip("-") or "t"
        name = f"{stem}-{secrets.token_hex(3)}"
        core = kubernetes.client.CoreV1Api(self.client)
        core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
        self._wait_namespace_ready(name)
        return name

    def delete_namespace(self, name: str) -> None:
        assert self.client is not None
        core = kubernetes.client.CoreV1Api(self.client)
        try:
            core.delete_namespace(name)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise

    def _wait_namespace_ready(self, name: str) -> None:
        assert self.client is not None
        core = kubernetes.client.CoreV1Api(self.client)
        wait_until(
            lambda: core.read_namespaced_service_account("default", name),
            timeout=30,
            what=f"the default ServiceAccount of {name}",
        )
        wait_until(
            lambda: core.read_namespaced_config_map("kube-root-ca.crt", name),
            timeout=30,
            what=f"kube-root-ca.crt in {name}",
        )


def _node_ready(node: Any) -> bool:
    conditions = (node.status and node.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _namespace_gone(core: kubernetes.client.CoreV1Api, name: str) -> bool:
    return name not in {n.metadata.name for n in core.list_namespace().items}


def wait_namespaces_gone(
    client: kubernetes.client.ApiClient, names: list[str], timeout: float
) -> None:
    """Until the namespace controller has emptied and removed each namespace."""
    core = kubernetes.client.CoreV1Api(client)
    deadline = time.monotonic() + timeout
    for name in names:
        wait_until(
            functools.partial(_namespace_gone, core, name),
            timeout=max(1.0, deadline - time.monotonic()),
            what=f"namespace {name} to be gone",
        )
