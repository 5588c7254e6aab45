"""The Node object of the process kubelet: registration, status, and the heartbeat Lease.

A real kubelet registers its Node with capacity, conditions and addresses, then renews a Lease in
`kube-node-lease` every 10 s (a quarter of its 40 s duration) and rewrites the Node status at a
slower rhythm; the node lifecycle controller marks the node NotReady (and taints it) when the
Lease lapses. This module builds those objects (pure) and the loop that keeps them fresh.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)
JsonDict = dict[str, Any]
KUBELET_VERSION = "v1.35.4"  # the control plane's release (tools/kube/go.mod)
LEASE_SECONDS = 40
RENEW_EVERY = 10.0
STATUS_EVERY = 60.0
CAPACITY = {"cpu": "32", "memory": "64Gi", "pods": "250", "ephemeral-storage": "100Gi"}


def now_micro() -> str:
    """A MicroTime, as Lease.spec.renewTime wants it."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_object(name: str) -> JsonDict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "spec": {},
    }


def node_status(name: str, started: str) -> JsonDict:
    beat = now()

    def condition(kind: str, status: str, reason: str, message: str) -> JsonDict:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": beat,
            "lastTransitionTime": started,
        }

    return {
        "capacity": CAPACITY,
        "allocatable": CAPACITY,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "no pressure"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "no pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "no pressure"),
            condition("Ready", "True", "KubeletReady", "process kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},  # no kubelet API: no logs/exec
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": "",
            "osImage": "kubelambda process kubelet",
            "containerRuntimeVersion": "process://1",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def lease_object(name: str, node_uid: str) -> JsonDict:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": "kube-node-lease",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}
            ],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": now_micro(),
        },
    }


Call = Callable[..., Awaitable[tuple[int, Any]]]  # (method, path, body, content_type) -> answer


class NodeAgent:
    """Registers the node and keeps its Lease and status fresh; `call` is the kubelet's client."""

    def __init__(self, name: str, call: Call) -> None:
        self.name = name
        self.call = call
        self.started = now()
        self.uid = ""
        self.renewals = 0
        # False: the heartbeat stops (as a dead node's), so the node-lifecycle controller marks
        # the Node NotReady and its pods not Ready; True again posts the status at once.
        self.beating = True
        self._resumed = False

    def pause(self) -> None:
        self.beating = False

    def resume(self) -> None:
        self._resumed = True
        self.beating = True

    async def register(self) -> None:
        status, body = await self.call("POST", "/api/v1/nodes", node_object(self.name))
        if status == 409:
            status, body = await self.call("GET", f"/api/v1/nodes/{self.name}")
        if status not in (200, 201):
            raise RuntimeError(f"cannot register node {self.name}: {status} {body}")
        self.uid = body["metadata"]["uid"]
        await self.post_status()
        await self.renew()

    async def post_status(self) -> None:
        status, body = await self.call(
            "PATCH",
            f"/api/v1/nodes/{self.name}/status",
            {"status": node_status(self.name, self.started)},
            "application/strategic-merge-patch+json",
        )
        if status != 200:
            raise RuntimeError(f"node status of {self.name}: {status} {body}")

    async def renew(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        patch = {"spec": {"holderIdentity": self.name, "renewTime": now_micro()}}
        status, body = await self.call("PATCH", path, patch, "application/merge-patch+json")
        if status == 404:
            status, body = await self.call(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                lease_object(self.name, self.uid),
            )
        if status not in (200, 201):
            raise RuntimeError(f"node lease of {self.name}: {status} {body}")
        self.renewals += 1

    async def heartbeat(self) -> None:
        """Renew the Lease every RENEW_EVERY s and the status every STATUS_EVERY s, forever."""
        since_status = 0.0
        while True:
            for _ in range(int(RENEW_EVERY * 10)):
                await asyncio.sleep(0.1)
                if self._resumed:
                    break
            since_status += RENEW_EVERY
            if not self.beating:
                continue
            try:
                await self.renew()
                if since_status >= STATUS_EVERY or self._resumed:
                    self._resumed = False
                    await self.post_status()
                    since_status = 0.0
            except (OSError, RuntimeError) as exc:  # a missed beat; the next one may land
                log.warning("node heartbeat failed: %s", exc)
