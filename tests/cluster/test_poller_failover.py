"""Poller failover on the real control plane: two `kubelambda poller` replicas share the
EventSourceMappings through their Leases; one is killed with SIGKILL; within 20 s its mappings'
Leases name the survivor, and the records keep reaching the function.

The broker is a real Redis (Debian's redis-server on a free loopback port) and the gateway is
`kubelambda dev` serving the source tests' recorder function in the test's namespace, so the
pollers invoke through a real gateway exactly as in a cluster (they reach it by URL). The
replicas use the admin kubeconfig; the chart's RBAC is proved by test_helm_install.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.controlplane import free_port
from tests.cluster.harness.waiting import wait_until
from tests.cluster.lambda_stack import Role
from tests.component.asyncq.servers import KubelambdaDev
from tests.component.sources.brokers import RedisServer
from tests.component.sources.conftest import HERE as SOURCES_TESTS
from tests.component.sources.conftest import Recorder

GROUP, VERSION = "kubelambda.dev", "v1alpha1"
MAPPINGS = 4
PER_ROUND = 50
TAKEOVER = 20.0  # the bound for a dead replica's mappings to move


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    yield server
    server.stop()


@pytest.fixture
def recorder_gateway(tmp_path: Path, namespace: str) -> Iterator[tuple[KubelambdaDev, Recorder]]:
    """`kubelambda dev` serving `recorder` in `namespace` (the name the pollers invoke)."""
    folder, out = tmp_path / "fns", tmp_path / "out"
    out.mkdir()
    shutil.copytree(SOURCES_TESTS / "recorder", folder / "recorder")
    doc = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Function",
        "metadata": {"name": "recorder", "namespace": namespace},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"path": "./recorder"},
            "timeout": 30,
            "environment": {"variables": {"OUT": str(out)}},
        },
    }
    (folder / "recorder.yaml").write_text(yaml.safe_dump(doc))
    dev = KubelambdaDev(folder, "--namespace", namespace, "--warm-per-runtime", "2")
    yield dev, Recorder(out)
    dev.stop()


def start_poller(cluster: Cluster, tmp_path: Path, ns: str, identity: str, gateway: str) -> Role:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update(KUBECONFIG=str(cluster.kubeconfig), PYTHONUNBUFFERED="1")
    argv = [
        "poller",
        f"--gateway={gateway}",
        f"--namespace={ns}",
        f"--watch-namespace={ns}",
        f"--identity={identity}",
        "--metrics-host=127.0.0.1",
        f"--metrics-port={free_port()}",
    ]
    return Role(identity, argv, env, tmp_path / f"{identity}.log")


def holders(custom: Any, coord: Any, ns: str) -> dict[str, str | None]:
    """mapping name -> the identity in its Lease (None while free or not yet created)."""
    mappings = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "eventsourcemappings")
    leases = {
        lease.metadata.name: lease.spec.holder_identity
        for lease in coord.list_namespaced_lease(ns).items
    }
    return {
        m["metadata"]["name"]: leases.get(f"kubelambda-esm-{m['metadata']['uid']}"[:63])
        for m in mappings["items"]
    }


def produce(redis: RedisServer, stream: str, numbers: range) -> None:
    client = redis.client()
    pipe = client.pipeline()
    for n in numbers:
        pipe.xadd(stream, {"data": json.dumps({"run": stream, "n": n})})
    pipe.execute()
    client.close()


def test_a_dead_replicas_mappings_move_to_the_survivor(
    cluster: Cluster,
    lambda_crds: list[Any],
    namespace: str,
    custom: Any,
    k8s_client: Any,
    redis: RedisServer,
    recorder_gateway: tuple[KubelambdaDev, Recorder],
    tmp_path: Path,
) -> None:
    dev, recorder = recorder_gateway
    coord = kubernetes.client.CoordinationV1Api(k8s_client)
    streams = [f"flow{i}" for i in range(MAPPINGS)]
    for stream in streams:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EventSourceMapping",
            "metadata": {"name": stream, "namespace": namespace},
            "spec": {
                "functionName": "recorder",
                "source": {"redis": {"url": redis.url, "stream": stream}},
                "startingPosition": "TRIM_HORIZON",
                "batchSize": 10,
            },
        }
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "eventsourcemappings", body
        )
    replicas = {
        name: start_poller(cluster, tmp_path, namespace, name, dev.url)
        for name in ("poller-a", "poller-b")
    }

    def logs() -> str:
        return "\n".join(f"--- {n} ---\n{r.log()[-4000:]}" for n, r in replicas.items())

    try:
        # Both replicas hold a fair share: two mappings each, every Lease taken.
        def spread() -> dict[str, str | None]:
            now = holders(custom, coord, namespace)
            owners = list(now.values())
            fair = len(now) == MAPPINGS and all(owners.count(r) == 2 for r in replicas)
            return now if fair else {}

        try:
            before = wait_until(spread, timeout=60, interval=0.2, what="the mappings spread")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from None
        for stream in streams:
            produce(redis, stream, range(PER_ROUND))
        for stream in streams:
            recorder.wait_for(stream, set(range(PER_ROUND)), timeout=60)
        status = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "eventsourcemappings", streams[0]
        )["status"]
        assert status["state"] == "Enabled", status

        # SIGKILL one replica: no release, its Leases simply stop being renewed.
        victim = replicas["poller-a"]
        orphaned = sorted(name for name, owner in before.items() if owner == "poller-a")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        killed = time.monotonic()
        # Records written while the mappings have no live owner must not be lost.
        for stream in orphaned:
            produce(redis, stream, range(PER_ROUND, 2 * PER_ROUND))

        def moved() -> dict[str, str | None]:
            now = holders(custom, coord, namespace)
            return now if all(owner == "poller-b" for owner in now.values()) else {}

        try:
            wait_until(moved, timeout=TAKEOVER, interval=0.1, what="the survivor to hold all")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from None
        took = time.monotonic() - killed
        assert took < TAKEOVER

        for stream in streams:
            produce(redis, stream, range(2 * PER_ROUND, 3 * PER_ROUND))
        for stream in orphaned:
            recorder.wait_for(stream, set(range(3 * PER_ROUND)), timeout=60)
        for stream in sorted(set(streams) - set(orphaned)):
            recorder.wait_for(
                stream, set(range(PER_ROUND)) | set(range(2 * PER_ROUND, 3 * PER_ROUND)), timeout=60
            )
        # The survivor's own mappings never changed hands, so nothing of theirs came twice.
        for stream in sorted(set(streams) - set(orphaned)):
            seen = recorder.seen(stream)
            assert len(seen) == len(set(seen)), f"{stream} delivered twice: {sorted(seen)}"
        assert replicas["poller-b"].proc.poll() is None, logs()
    finally:
        for role in replicas.values():
            role.stop()
