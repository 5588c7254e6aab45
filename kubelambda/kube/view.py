"""The one watch layer: Functions, Versions, Aliases, function pods and Nodes, kept current in
memory.

Each kind (per served namespace, or cluster-wide) is listed once, then watched from the list's
resourceVersion; a watch that ends is resumed from the last event seen, and one that is too old
(410 Gone) starts over with a fresh list. Nothing polls. Readers see plain dicts; subscribers are
told which kind changed, and `wait_for_pods` wakes claimers when any pod (or Node) changes.
`pod_infos` joins each pod with its Node's Ready condition: a pod on a NotReady node is not
served (the gateway) nor counted in its pool (the operator) from the moment the Node is marked,
not only once the node-lifecycle controller gets round to the pod's own condition.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable
from typing import Any

from kubelambda.api.common import GROUP, VERSION
from kubelambda.kube.client import ApiError, JsonDict, KubeApi, collection
from kubelambda.kube.contract import POOL_SELECTOR, PodInfo, node_ready
from kubelambda.loop import cancel_all

log = logging.getLogger(__name__)
CUSTOM_KINDS = ("functions", "versions", "aliases")
Listener = Callable[[str], None]


def key_of(obj: JsonDict) -> tuple[str, str]:
    meta = obj.get("metadata", {})
    return (meta.get("namespace", ""), meta.get("name", ""))


class ResourceWatch:
    """List-then-watch of one collection, keeping its objects by (namespace, name)."""

    def __init__(
        self,
        api: KubeApi,
        kind: str,
        path: str,
        selector: str | None,
        notify: Listener,
        *,
        timeout: int = 240,
        slim: Callable[[JsonDict], JsonDict] | None = None,
    ) -> None:
        self.api = api
        self.slim = slim  # what to keep of each object (None: all of it)
        self.kind = kind
        self.path = path
        self.selector = selector
        self.notify = notify
        self.timeout = timeout
        self.objects: dict[tuple[str, str], JsonDict] = {}
        self.synced = asyncio.Event()

    async def run(self) -> None:
        backoff = 0.2
        rv: str | None = None
        while True:
            try:
                if rv is None:
                    rv = await self._relist()
                rv = await self._watch(rv)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("watching %s failed (%s); retrying in %.1f s", self.path, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                if isinstance(exc, ApiError) and exc.status == 410:
                    rv = None

    async def _relist(self) -> str:
        listing = await self.api.list(self.path, self.selector)
        items = listing.get("items", [])
        fresh = {key_of(item): self._kept(item) for item in items}
        self.objects = fresh
        self.synced.set()
        self.notify(self.kind)
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    def _kept(self, obj: JsonDict) -> JsonDict:
        return self.slim(obj) if self.slim is not None else obj

    async def _watch(self, rv: str) -> str | None:
        """Returns where to resume, or None to relist."""
        async for event in self.api.watch(self.path, rv, self.selector, self.timeout):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                return None  # 410 Gone (expired resourceVersion): start over
            rv = obj.get("metadata", {}).get("resourceVersion") or rv
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                self.objects.pop(key_of(obj), None)
            else:
                self.objects[key_of(obj)] = self._kept(obj)
            self.notify(self.kind)
        return rv


def node_essentials(node: JsonDict) -> JsonDict:
    """A Node's name and conditions: a real Node carries its image list (tens of KiB each)."""
    meta = node.get("metadata", {})
    conditions = (node.get("status") or {}).get("conditions") or []
    return {"metadata": {"name": meta.get("name", "")}, "status": {"conditions": conditions}}


class ClusterView:
    """Every watched kind across the served namespaces (none given: all namespaces)."""

    def __init__(
        self,
        api: KubeApi,
        namespaces: Iterable[str] = (),
        *,
        pods: bool = True,
        nodes: bool | None = None,
    ) -> None:
        """`nodes` (default: with `pods`) also watches the Nodes, cluster-wide."""
        self.api = api
        self.namespaces = tuple(namespaces)
        self._listeners: list[Listener] = []
        self._pods_changed = asyncio.Event()
        scopes: list[str | None] = list(self.namespaces) or [None]
        self.watches: dict[str, list[ResourceWatch]] = {}
        for plural in CUSTOM_KINDS:
            self.watches[plural] = [
                ResourceWatch(api, plural, collection(GROUP, VERSION, plural, ns), None, self._told)
                for ns in scopes
            ]
        if pods:
            self.watches["pods"] = [
                ResourceWatch(
                    api, "pods", collection("", "v1", "pods", ns), POOL_SELECTOR, self._told
                )
                for ns in scopes
            ]
        # Not part of `synced`: a Node the view has not seen counts as Ready (see node_ready).
        self.node_watch: ResourceWatch | None = None
        if pods if nodes is None else nodes:
            self.node_watch = ResourceWatch(
                api, "nodes", collection("", "v1", "nodes"), None, self._told, slim=node_essentials
            )
        self._tasks: list[asyncio.Task[None]] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _told(self, kind: str) -> None:
        if kind in ("pods", "nodes"):  # a Node's readiness changes which pods may serve
            self._pods_changed.set()
            self._pods_changed = asyncio.Event()
        for listener in self._listeners:
            listener(kind)

    def start(self) -> None:
        for watches in self.watches.values():
            for watch in watches:
                self._tasks.append(asyncio.create_task(watch.run(), name=f"watch {watch.path}"))
        if self.node_watch is not None:
            self._tasks.append(asyncio.create_task(self.node_watch.run(), name="watch nodes"))

    async def wait_synced(self, within: float | None = None) -> None:
        async with asyncio.timeout(within):
            for watches in self.watches.values():
                for watch in watches:
                    await watch.synced.wait()

    @property
    def synced(self) -> bool:
        return all(w.synced.is_set() for ws in self.watches.values() for w in ws)

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks.clear()

    def objects(self, kind: str) -> list[JsonDict]:
        return [obj for watch in self.watches.get(kind, []) for obj in watch.objects.values()]

    def get(self, kind: str, namespace: str, name: str) -> JsonDict | None:
        for watch in self.watches.get(kind, []):
            found = watch.objects.get((namespace, name))
            if found is not None:
                return found
        return None

    def node_ready(self, name: str | None) -> bool:
        """False only for a Node seen NotReady (Ready False or Unknown); an unknown or unwatched
        Node counts as Ready, so a view without Nodes behaves as before."""
        if self.node_watch is None or not name:
            return True
        node = self.node_watch.objects.get(("", name))
        return node is None or node_ready(node)

    def pod_info(self, pod: JsonDict) -> PodInfo:
        info = PodInfo.from_pod(pod)
        if not self.node_ready(info.node):
            info = dataclasses.replace(info, node_ready=False)
        return info

    def pod_infos(self) -> list[PodInfo]:
        """Every function pod, with its Node's readiness."""
        return [self.pod_info(pod) for pod in self.objects("pods")]

    def remember(self, kind: str, obj: JsonDict) -> None:
        """Record an object this process just wrote, before its watch event arrives."""
        ns = obj.get("metadata", {}).get("namespace")
        for watch in self.watches.get(kind, []):
            if watch.path.endswith(f"/namespaces/{ns}/{kind}") or "/namespaces/" not in watch.path:
                watch.objects[key_of(obj)] = obj
                self._told(kind)
                return

    def forget(self, kind: str, obj: JsonDict) -> None:
        for watch in self.watches.get(kind, []):
            watch.objects.pop(key_of(obj), None)
        self._told(kind)

    async def wait_for_pods(self, within: float) -> bool:
        """Wait until any function pod changes; False when `within` seconds pass first."""
        changed = self._pods_changed
        try:
            async with asyncio.timeout(within):
                await changed.wait()
        except TimeoutError:
            return False
        return True

    def summary(self) -> dict[str, Any]:
        found = {kind: len(self.objects(kind)) for kind in self.watches}
        if self.node_watch is not None:
            found["nodes"] = len(self.node_watch.objects)
        return found
