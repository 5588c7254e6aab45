"""The pool keeper: keeps every pool at its size, reaps what should go, reports provisioned pods.

It reads the shared watch layer (`ClusterView`), never polls the API: on any change of a
Function, Version, Alias or function pod (and on a short tick, for the time-based rules) it
computes the demand and the plan (`demand.py`, `sizing.py`, both pure) and applies it: creates
pods, deletes pods (as it saw them: a resourceVersion precondition, and a warm pod's agent
retired first, `retire.py`), and writes `provisionedConcurrencyReady` to the
Versions and Aliases that ask for provisioned concurrency. It is the only writer of pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from kubelambda.api.common import GROUP, VERSION
from kubelambda.kube.catalog import catalog_from_objects
from kubelambda.kube.client import ApiError, JsonDict, KubeApi, collection
from kubelambda.kube.codes import ConfigMapCode
from kubelambda.kube.contract import FUNCTION, MANAGER, POOL, PodInfo
from kubelambda.kube.view import ClusterView
from kubelambda.operator.backoff import CONDITION, CreateBackoff, pool_event, refusal_reason
from kubelambda.operator.config import OperatorConfig
from kubelambda.operator.demand import Demand, demand
from kubelambda.operator.podbuilder import build_pod
from kubelambda.operator.refill import RefillGate
from kubelambda.operator.retire import Retirer
from kubelambda.operator.sizing import PoolPlan, plan, pool_of
from kubelambda.operator.status import condition, timestamp
from kubelambda.operator.versions import number_of

log = logging.getLogger(__name__)
PARALLEL_WRITES = 8


def owners(functions: list[JsonDict]) -> dict[tuple[str, str], dict[str, Any]]:
    """An ownerReference per Function: its pods are garbage-collected with it."""
    found = {}
    for fn in functions:
        meta = fn.get("metadata", {})
        found[(meta.get("namespace", ""), meta.get("name", ""))] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Function",
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "blockOwnerDeletion": False,
        }
    return found


class PoolKeeper:
    def __init__(
        self,
        api: KubeApi,
        view: ClusterView,
        config: OperatorConfig,
        *,
        tick: float = 2.0,
        may_act: Callable[[], bool] = lambda: True,
    ) -> None:
        self.api = api
        self.may_act = may_act
        self.view = view
        self.config = config
        self.tick = min(tick, config.claim_lease / 4)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._deleting: dict[str, float] = {}  # pod name -> when we asked (not yet seen gone)
        self._reported: dict[tuple[str, str, str], int] = {}
        self._writes = asyncio.Semaphore(PARALLEL_WRITES)
        self.code = ConfigMapCode(api)  # provisioned pods get code from ConfigMaps inline
        self.passes = 0
        self.backoff = CreateBackoff()
        self._generic_owner: dict[str, Any] | None = None
        self.refill = RefillGate(config.refill_delay, config.refill_floor)
        self.retirer = Retirer(config.agent_key, lease=config.claim_lease)

    def start(self) -> None:
        self.view.subscribe(lambda _kind: self._wake.set())
        self._task = asyncio.create_task(self.run(), name="pool keeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.retirer.close()

    async def run(self) -> None:
        await self.view.wait_synced()
        while True:
            try:
                await self.once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("a pool keeper pass failed; retrying")
            wait = self.tick
            due = self.refill.wake_at  # a short pool's refill, held back a moment after a claim
            if due is not None:  # not below 50 ms: a pass that keeps failing must not spin
                wait = max(0.05, min(wait, due - time.time()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()

    def _namespaces(self, catalog_namespaces: set[str]) -> set[str]:
        found = set(self.config.namespaces) if self.config.namespaces else catalog_namespaces
        return {ns for ns in found if self.config.serves(ns)}

    async def once(self) -> PoolPlan:
        """One pass: plan against the view and apply the plan."""
        self.passes += 1
        await self._find_generic_owner()
        now = time.time()
        functions = self.view.objects("functions")
        catalog = catalog_from_objects(
            functions, self.view.objects("versions"), self.view.objects("aliases")
        )
        await self.code.refresh(catalog)
        namespaces = self._namespaces(catalog.namespaces())
        wanted = demand(self.config, catalog, namespaces, self.code.resolve)
        for problem in wanted.problems:
            log.warning("%s", problem)
        pods = self.view.pod_infos()  # with their Nodes' readiness
        present = {p.name for p in pods}
        # Forget a deletion once the pod is gone, or after 30 s (then ask again).
        self._deleting = {n: t for n, t in self._deleting.items() if now - t < 30 and n in present}
        pods = [p for p in pods if p.name not in self._deleting]
        result = plan(self.config, wanted, pods, now, owners(functions), self.refill)
        if not self.may_act():
            log.warning("not leading (lease not renewed in time): the pool is left alone")
            return result
        creates = [self._owned(build_pod(self.config, r)) for r in result.create]
        # A pool whose creates were refused waits out its backoff (quota, LimitRange, ...).
        creates = [p for p in creates if not self.backoff.blocked(self._pool(p), now)]
        await asyncio.gather(
            *(self._create(pod) for pod in creates),
            *(self._delete(pod, why) for pod, why in result.delete),
        )
        await self._report_provisioned(wanted, pods)
        return result

    async def _find_generic_owner(self) -> None:
        """The release's ClusterRole, as the owner of generic pods (a namespaced object may have
        a cluster-scoped owner): `helm uninstall` deletes it and the garbage collector the pods."""
        if self.config.pod_owner is None or self._generic_owner is not None:
            return
        path = f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{self.config.pod_owner}"
        try:
            role = await self.api.get(path)
        except ApiError as exc:
            log.warning("the generic pods' owner %s: %s", self.config.pod_owner, exc)
            return
        self._generic_owner = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "name": self.config.pod_owner,
            "uid": role["metadata"]["uid"],
            "blockOwnerDeletion": False,
        }

    def _owned(self, pod: JsonDict) -> JsonDict:
        meta = pod["metadata"]
        generic = meta.get("labels", {}).get(POOL) == "generic"
        if generic and self._generic_owner is not None and not meta.get("ownerReferences"):
            meta["ownerReferences"] = [self._generic_owner]
        return pod

    def _pool(self, pod: JsonDict) -> tuple[str, ...]:
        return pool_of(PodInfo.from_pod(pod), self.config) or ("other",)

    async def _create(self, pod: JsonDict) -> None:
        ns = pod["metadata"]["namespace"]
        pool = self._pool(pod)
        function = pod["metadata"].get("labels", {}).get(FUNCTION)
        refused: ApiError | None = None
        async with self._writes:
            try:
                created = await self.api.create(collection("", "v1", "pods", ns), pod)
            except ApiError as exc:
                refused = exc
        if refused is not None:
            body = refused.body
            message = str(body.get("message") if isinstance(body, dict) else refused)
            reason = refusal_reason(refused.status, message)
            failure, new = self.backoff.failed(pool, time.time(), reason, message)
            if new:
                delay = failure.until - time.time()
                log.warning(
                    "creating a pod of pool %s failed (%s: %s); next try in %.0f s",
                    "/".join(pool),
                    reason,
                    message,
                    delay,
                )
                if function:
                    await self._tell(ns, function, False, reason, message)
            return
        if self.backoff.succeeded(pool) is not None and function:
            await self._tell(ns, function, True, "Created", "the pool's pods are created again")
        self.view.remember("pods", created)  # counted at once, before its watch event
        labels = created["metadata"].get("labels", {})
        log.info("created pod %s/%s (%s)", ns, created["metadata"]["name"], labels)

    async def _tell(self, ns: str, name: str, ok: bool, reason: str, message: str) -> None:
        """A Warning Event on the Function and its `PodsCreated` condition (best effort)."""
        function = self.view.get("functions", ns, name)
        if function is None:
            return
        now = time.time()
        try:
            if not ok:
                event = pool_event(function, reason, message, timestamp(now), MANAGER)
                await self.api.create(collection("", "v1", "events", ns), event)
            conditions = condition(
                (function.get("status") or {}).get("conditions"),
                CONDITION,
                ok,
                reason,
                message[:1024],
                None,
                now,
            )
            path = f"{collection(GROUP, VERSION, 'functions', ns)}/{name}/status"
            await self.api.patch(path, {"status": {"conditions": conditions}})
        except ApiError as exc:
            log.warning("reporting failed pod creates on %s/%s failed: %s", ns, name, exc)

    async def _delete(self, pod: PodInfo, why: str) -> None:
        self._deleting[pod.name] = time.time()
        path = f"{collection('', 'v1', 'pods', pod.namespace)}/{pod.name}"
        # Only as seen: a pod a gateway claimed (or renewed) meanwhile is not ours to delete.
        exited = pod.phase in ("Failed", "Succeeded")
        seen = None if exited else pod.resource_version
        async with self._writes:
            if not await self.retirer.may_delete(pod):
                self._deleting.pop(pod.name, None)  # a gateway took it: judged again
                return
            try:
                await self.api.delete(path, resource_version=seen)
            except ApiError as exc:
                self._deleting.pop(pod.name, None)
                if exc.status == 409:
                    log.info("pod %s changed before its deletion; judged again", pod.name)
                elif exc.status != 404:
                    log.warning("deleting pod %s failed: %s", pod.name, exc)
                return
        log.info("deleted pod %s/%s: %s", pod.namespace, pod.name, why)

    async def _report_provisioned(self, wanted: Demand, pods: list[PodInfo]) -> None:
        """Write provisionedConcurrencyReady where it changed (Versions and Aliases)."""
        ready: dict[tuple[str, str, str], int] = {}
        for want in wanted.provisioned.values():
            count = sum(
                1
                for p in pods
                if p.pool == "provisioned"
                and p.revision == want.revision
                and not p.deleting
                and p.serving  # a pod on a NotReady node serves nothing
                and p.state in ("claimed", "ready")
            )
            ready[(want.namespace, want.function, want.version)] = count
        writes = []
        for plural in ("versions", "aliases"):
            for obj in self.view.objects(plural):
                spec = obj.get("spec") or {}
                asked = int(spec.get("provisionedConcurrency") or 0)
                if not asked:
                    continue
                number = (
                    str(number_of(obj))
                    if plural == "versions"
                    else str(spec.get("functionVersion"))
                )
                meta = obj["metadata"]
                key = (meta["namespace"], spec.get("functionName", ""), number)
                value = min(asked, ready.get(key, 0))
                ident = (plural, meta["namespace"], meta["name"])
                current = (obj.get("status") or {}).get("provisionedConcurrencyReady")
                if current != value and self._reported.get(ident) != value:
                    self._reported[ident] = value
                    path = collection(GROUP, VERSION, plural, meta["namespace"])
                    body = {"status": {"provisionedConcurrencyReady": value}}
                    writes.append(self.api.patch(f"{path}/{meta['name']}/status", body))
        for outcome in await asyncio.gather(*writes, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.warning("reporting provisioned concurrency failed: %s", outcome)
