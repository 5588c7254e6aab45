"""Fixtures of the real test cluster (see README.md): one control plane and one process kubelet
per pytest session, and a fresh namespace per test.

- ``cluster`` (session): the running `Cluster`, with the fixture CRD (widgets) established.
- ``lambda_crds`` (session): the repo's four CRDs from ``crds/``, created and Established at
  the session's start (a refusal fails only the tests that use them).
- ``namespace``: a fresh namespace (with its ServiceAccount and root CA), deleted afterwards.
- ``kubeconfig``: the admin kubeconfig; sets ``KUBECONFIG`` and the kubernetes client's default
  configuration (restored afterwards). ``k8s_client``, ``core``, ``custom``: clients on it.
- ``kubelet``: the session's process kubelet; a test fails if the kubelet recorded an error.

The session ends by stopping the kubelet and the control plane, and fails if any process they
started, or any port they listened on, outlives them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import psutil
import pytest
import yaml

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.controlplane import REPO, ToolsMissing
from tests.cluster.harness.kubelet import Kubelet
from tests.cluster.harness.waiting import wait_until

FIXTURE_CRDS = Path(__file__).parent / "fixtures"


def crd_documents(*paths: Path) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in the given YAML files and folders (sorted, recursive)."""
    files: list[Path] = []
    for path in paths:
        files += sorted(path.rglob("*.y*ml")) if path.is_dir() else [path]
    return [
        doc
        for file in files
        for doc in yaml.safe_load_all(file.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
    ]


def install_crds(client: kubernetes.client.ApiClient, docs: list[dict[str, Any]]) -> list[Any]:
    """Create (or replace) the CRDs and wait until each is Established; returns them."""
    api = kubernetes.client.ApiextensionsV1Api(client)
    for doc in docs:
        name = doc["metadata"]["name"]
        try:
            api.create_custom_resource_definition(doc)
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise AssertionError(f"the apiserver refused CRD {name}: {exc.body}") from None
            current = api.read_custom_resource_definition(name)
            doc = {
                **doc,
                "metadata": {
                    **doc["metadata"],
                    "resourceVersion": current.metadata.resource_version,
                },
            }
            api.replace_custom_resource_definition(name, doc)

    def established(name: str) -> Any:
        crd = api.read_custom_resource_definition(name)
        conditions = {c.type: c.status for c in (crd.status.conditions or [])}
        return crd if conditions.get("Established") == "True" else None

    objects = kubernetes.client.CustomObjectsApi(client)

    def served(doc: dict[str, Any]) -> bool:
        """A list of the kind answers: Established can come before its storage is ready (a
        request then gets "storage is (re)initializing")."""
        spec = doc["spec"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            try:
                objects.list_cluster_custom_object(
                    spec["group"], version["name"], spec["names"]["plural"], limit=1
                )
            except kubernetes.client.ApiException:
                return False
        return True

    crds = [
        wait_until(
            functools.partial(established, doc["metadata"]["name"]), timeout=30, what="Established"
        )
        for doc in docs
    ]
    for doc in docs:
        wait_until(
            functools.partial(served, doc), timeout=30, what=f"{doc['metadata']['name']} served"
        )
    return crds


def _alive(pid: int, started: float | None = None) -> bool:
    try:
        proc = psutil.Process(pid)
        same = started is None or proc.create_time() == started
        return bool(same and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        running.start()
    except ToolsMissing as exc:
        pytest.fail(str(exc))  # a missing build is a failure, never a skip
    try:
        assert running.client is not None
        install_crds(running.client, crd_documents(FIXTURE_CRDS))
        # The repo's CRDs go in now too, so the garbage collector's discovery (it resyncs every
        # 30 s) knows them by the time a test deletes an owner; a refusal fails `lambda_crds`.
        try:
            running.lambda_crds = install_crds(running.client, crd_documents(REPO / "crds"))
        except AssertionError as exc:
            running.lambda_crds_error = exc
        yield running
    finally:
        kubelet_pids = running.kubelet.spawned_pids if running.kubelet else []
        control_pids, ports = running.control.pids, list(running.control.ports)
        running.stop()
        # The kubelet's pods and the control plane are gone, and so are their listening sockets.
        leaked = [pid for pid, started in kubelet_pids if _alive(pid, started)]
        leaked += [pid for pid in control_pids if _alive(pid)]
        deadline = time.monotonic() + 10
        listening = _listening(ports, {p for p, _ in kubelet_pids} | set(control_pids))
        while listening and time.monotonic() < deadline:
            time.sleep(0.1)  # sockets close a moment after their process exits
            listening = _listening(ports, {p for p, _ in kubelet_pids} | set(control_pids))
        assert not leaked, f"cluster processes outlived the session: {leaked}"
        assert not listening, f"listening sockets outlived the session: {listening}"


def _listening(ports: list[int], pids: set[int]) -> list[Any]:
    found = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status != psutil.CONN_LISTEN or not conn.laddr:
            continue
        ip, port = conn.laddr.ip, conn.laddr.port
        on_pod_ip = ip.startswith("127.0.") and ip not in ("127.0.0.1", "127.0.1.1")
        if (ip == "127.0.0.1" and port in ports) or (on_pod_ip and conn.pid in pids):
            found.append(conn.laddr)
    return found


@pytest.fixture(scope="session")
def lambda_crds(cluster: Cluster) -> list[Any]:
    """The four CRDs of crds/, as the apiserver accepted and established them."""
    if cluster.lambda_crds_error is not None:
        raise cluster.lambda_crds_error
    return cluster.lambda_crds


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = cluster.new_namespace(request.node.name.replace("_", "-").lower()[:30])
    yield name
    cluster.delete_namespace(name)


@pytest.fixture
def kubeconfig(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = cluster.kubeconfig
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    previous = kubernetes.client.Configuration.get_default_copy()
    kubernetes.config.load_kube_config(config_file=str(path))
    yield path
    kubernetes.client.Configuration.set_default(previous)


@pytest.fixture
def k8s_client(kubeconfig: Path) -> Iterator[kubernetes.client.ApiClient]:
    with kubernetes.config.new_client_from_config(str(kubeconfig)) as client:
        yield client


@pytest.fixture
def core(k8s_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(k8s_client)


@pytest.fixture
def custom(k8s_client: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(k8s_client)


@pytest.fixture
def kubelet(cluster: Cluster) -> Iterator[Kubelet]:
    assert cluster.kubelet is not None
    before = len(cluster.kubelet.errors)
    yield cluster.kubelet
    errors = cluster.kubelet.errors[before:]
    assert not errors, f"the process kubelet failed: {errors!r}"
