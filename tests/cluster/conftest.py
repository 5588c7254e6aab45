"""Fixtures of the emulated cluster: an apiserver with our CRDs, a kubeconfig, a test kubelet.

- ``apiserver``: a fresh `ApiServer` per test (milliseconds to start), with every CRD in the
  repo's ``crds/`` and in ``tests/cluster/fixtures/`` registered. Override ``crd_sources`` to
  change that.
- ``kubeconfig``: the server's kubeconfig path, with ``KUBECONFIG`` and the kubernetes client's
  ``KUBE_CONFIG_DEFAULT_LOCATION`` pointing at it and the client's default configuration loaded
  from it (all restored afterwards).
- ``k8s_client``: a `kubernetes.client.ApiClient` for that server.
- ``kubelet``: a running `Kubelet` on the server; its processes are checked dead afterwards.
- ``image_table``: the kubelet's image table, to extend before the kubelet starts.

A session-wide autouse check fails the run if any process started by a test kubelet, or any
listening socket on a pod IP or apiserver port, outlives the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import psutil
import pytest

from tests.cluster.apiserver import FIXTURE_CRDS, REPO, ApiServer, crd_documents
from tests.cluster.kubelet import Kubelet
from tests.cluster.podspec import ImageTable

_STARTED_PIDS: list[tuple[int, float]] = []
_SERVER_PORTS: list[int] = []


@pytest.fixture(scope="session", autouse=True)
def no_leaked_processes_or_ports() -> Iterator[None]:
    yield
    leaked = [pid for pid, started in _STARTED_PIDS if _alive(pid, started)]
    pids = {pid for pid, _ in _STARTED_PIDS}
    listening = [
        conn.laddr
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN
        and conn.laddr
        and (
            (
                (
                    conn.laddr.ip.startswith("127.0.")
                    and conn.laddr.ip not in ("127.0.0.1", "127.0.1.1")
                )
                and (conn.pid == os.getpid() or conn.pid in pids)
            )
            or (
                conn.laddr.ip == "127.0.0.1"
                and conn.laddr.port in _SERVER_PORTS
                and conn.pid == os.getpid()
            )
        )
    ]
    assert not leaked, f"test kubelet processes outlived the session: {leaked}"
    assert not listening, f"listening sockets outlived the session: {listening}"


def _alive(pid: int, started: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return bool(proc.create_time() == started and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def crd_sources() -> list[Path]:
    return [REPO / "crds", FIXTURE_CRDS]


@pytest.fixture
def apiserver(tmp_path: Path, crd_sources: list[Path]) -> Iterator[ApiServer]:
    server = ApiServer(tmp_path, crd_documents(p for p in crd_sources if p.exists()))
    with server:
        _SERVER_PORTS.append(server.port)
        yield server
    errors = server.emulator.internal_errors
    assert not errors, f"the emulated apiserver failed internally: {errors!r}"


@pytest.fixture
def kubeconfig(apiserver: ApiServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = apiserver.kubeconfig
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
def image_table() -> ImageTable:
    return ImageTable.default()


@pytest.fixture
def kubelet(
    apiserver: ApiServer, kubeconfig: Path, tmp_path: Path, image_table: ImageTable
) -> Iterator[Kubelet]:
    kubelet = Kubelet(
        apiserver.url, tmp_path / "kubelet", kubeconfig=kubeconfig, images=image_table
    )
    try:
        kubelet.start()
        yield kubelet
    finally:
        kubelet.stop()
        _STARTED_PIDS.extend(kubelet.spawned_pids)
    alive = [pid for pid, started in kubelet.spawned_pids if _alive(pid, started)]
    assert not alive, f"pod processes outlived the kubelet: {alive}"
    assert not kubelet.errors, f"the test kubelet failed: {kubelet.errors!r}"
