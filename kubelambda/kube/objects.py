"""The control API's object store in a cluster: the API server itself, acting as the caller.

Every control call becomes a create, a PUT with the resourceVersion it read (so a RevisionId is
Kubernetes' own optimistic-concurrency check), or a delete of Function, Version, Alias and
EventSourceMapping objects, so `kubectl get fn` and the API always agree. With a caller named
by authentication, requests carry Impersonate-User/-Group and RBAC decides who may deploy.
LayerVersion records are ConfigMaps labelled `kubelambda.dev/layer-version`, whose one key
holds the record's spec. Reads answer Lambda's state as this gateway can honour it (`as_served`):
Active only once the gateway's own catalog serves that configuration, so a client that waits
for Active can invoke. The mapping between store calls and API requests is pure (`path_of`,
`to_configmap`, `from_configmap`, `store_error`, `as_served`) and tested directly.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable

from pydantic import ValidationError

from kubelambda.api.alias import AliasSpec
from kubelambda.api.common import API_VERSION, GROUP, VERSION
from kubelambda.api.function import FunctionSpec
from kubelambda.api.resources import KINDS
from kubelambda.kube.client import ApiError, JsonDict, KubeApi, collection
from kubelambda.serving.catalog import Catalog
from kubelambda.serving.control.store import (
    LAYER,
    AlreadyExists,
    Caller,
    Denied,
    Invalid,
    Missing,
    Obj,
    Stale,
    StoreError,
)

# The catalog the gateway serves now; None: do not overlay (a client outside the gateway).
Served = Callable[[], "Catalog | None"]
LAYER_LABEL = "kubelambda.dev/layer-version"
LAYER_KEY = "layer-version.json"
ALIAS_SETTLE = 15.0  # seconds a CreateAlias/UpdateAlias waits for the gateway's watch
# (namespace, function, alias) -> (function version, additional version weights)
AliasKey = tuple[str, str, str]
AliasRouting = tuple[str, dict[str, float]]


def path_of(kind: str, namespace: str, name: str | None = None) -> str:
    """The API path of a kind's collection, or of one object."""
    if kind == LAYER:
        base = collection("", "v1", "configmaps", namespace)
    else:
        base = collection(GROUP, VERSION, KINDS[kind].plural, namespace)
    return f"{base}/{name}" if name else base


def to_configmap(obj: Obj) -> JsonDict:
    meta = obj["metadata"]
    out_meta: JsonDict = {
        "name": meta["name"],
        "namespace": meta.get("namespace"),
        "labels": {**(meta.get("labels") or {}), LAYER_LABEL: "true"},
    }
    if meta.get("resourceVersion"):
        out_meta["resourceVersion"] = meta["resourceVersion"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": out_meta,
        "data": {LAYER_KEY: json.dumps(obj["spec"], sort_keys=True)},
    }


def from_configmap(doc: JsonDict) -> Obj:
    meta = doc.get("metadata") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": LAYER,
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "resourceVersion", "creationTimestamp", "labels")
            if k in meta
        },
        "spec": json.loads((doc.get("data") or {}).get(LAYER_KEY) or "{}"),
    }


def as_served(obj: Obj, catalog: Catalog | None) -> Obj:
    """The object's status as this gateway can honour it: the operator may have marked a
    Function or Version Active before the gateway's watch delivered it, and Lambda's Active means
    invokable. A Function the catalog lacks is Pending; one whose served spec is older is
    updating (InProgress); a Version the catalog lacks is Pending."""
    kind = obj.get("kind")
    if catalog is None or kind not in ("Function", "Version"):
        return obj
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    status = obj.get("status") or {}
    if kind == "Version":
        entry = catalog.functions.get((namespace, str(obj["spec"].get("functionName"))))
        number = obj["spec"].get("version") or status.get("version")
        if status.get("state") == "Active" and (entry is None or str(number) not in entry.versions):
            out = copy.deepcopy(obj)
            out["status"] = {**status, "state": "Pending"}
            return out
        return obj
    entry = catalog.functions.get((namespace, str(meta.get("name"))))
    if status.get("state") != "Active":
        return obj
    if entry is None:
        out = copy.deepcopy(obj)
        out["status"] = {**status, "state": "Pending", "observedGeneration": None}
        return out
    try:
        wanted = FunctionSpec.model_validate(obj.get("spec") or {}).to_manifest()
    except ValidationError:
        return obj
    if wanted != entry.latest.spec.to_manifest():
        out = copy.deepcopy(obj)
        generation = int(meta.get("generation") or 1)
        out["status"] = {**status, "observedGeneration": generation - 1}
        return out
    return obj


def alias_route(obj: Obj) -> tuple[AliasKey, AliasRouting] | None:
    """What an Alias object asks the gateway to route; None when its spec does not validate."""
    meta = obj.get("metadata") or {}
    try:
        spec = AliasSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return None
    key = (str(meta.get("namespace") or "default"), spec.function_name, spec.name or meta["name"])
    return key, (spec.function_version, spec.weights())


def routes_as_written(catalog: Catalog, key: AliasKey, routing: AliasRouting) -> bool:
    """The catalog routes the alias as written."""
    entry = catalog.functions.get((key[0], key[1]))
    route = entry.aliases.get(key[2]) if entry is not None else None
    return route is not None and (route.function_version, route.weights) == routing


def store_error(exc: ApiError, kind: str, name: str, creating: bool = False) -> StoreError:
    message = exc.body.get("message") if isinstance(exc.body, dict) else str(exc.body)
    if exc.status == 409:
        if creating:
            return AlreadyExists(f"{kind} {name} already exists")
        return Stale(f"{kind} {name} changed since it was read")
    if exc.status == 404:
        return Missing(f"{kind} {name} does not exist")
    if exc.status == 403:
        return Denied(f"Kubernetes refused: {message}")
    if exc.status in (400, 422):
        return Invalid(f"{kind} {name}: {message}")
    return StoreError(f"{kind} {name}: the API server answered {exc.status}: {message}")


class KubeObjectStore:
    """`ObjectStore` over one API client (already impersonating, when a caller is named)."""

    def __init__(
        self,
        api: KubeApi,
        served: Served = lambda: None,
        written: dict[AliasKey, AliasRouting] | None = None,
    ) -> None:
        self.api = api
        self.served = served
        self.written = written if written is not None else {}  # aliases to see served

    def _wrote(self, kind: str, doc: Obj) -> None:
        if kind == "Alias" and (found := alias_route(doc)) is not None:
            self.written[found[0]] = found[1]

    async def list(self, kind: str, namespace: str) -> list[Obj]:
        try:
            if kind == LAYER:
                found = await self.api.list(path_of(kind, namespace), f"{LAYER_LABEL}=true")
                return [from_configmap(doc) for doc in found.get("items") or []]
            found = await self.api.list(path_of(kind, namespace))
        except ApiError as exc:
            raise store_error(exc, kind, "*") from exc
        catalog = self.served()
        items: list[Obj] = []
        for doc in found.get("items") or []:
            items.append(as_served({"apiVersion": API_VERSION, "kind": kind, **doc}, catalog))
        return items

    async def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            doc = await self.api.get(path_of(kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise store_error(exc, kind, name) from exc
        return from_configmap(doc) if kind == LAYER else as_served(doc, self.served())

    async def create(self, kind: str, namespace: str, obj: Obj) -> Obj:
        body = to_configmap(obj) if kind == LAYER else obj
        name = obj["metadata"]["name"]
        try:
            doc = await self.api.create(path_of(kind, namespace), body)
        except ApiError as exc:
            raise store_error(exc, kind, name, creating=True) from exc
        if kind == LAYER:
            return from_configmap(doc)
        self._wrote(kind, doc)
        return doc

    async def replace(self, kind: str, namespace: str, obj: Obj) -> Obj:
        name = obj["metadata"]["name"]
        body = (
            to_configmap(obj) if kind == LAYER else {k: v for k, v in obj.items() if k != "status"}
        )
        try:
            doc = await self.api.replace(path_of(kind, namespace, name), body)
        except ApiError as exc:
            raise store_error(exc, kind, name) from exc
        if kind == LAYER:
            return from_configmap(doc)
        self._wrote(kind, doc)
        return doc

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            await self.api.delete(path_of(kind, namespace, name))
        except ApiError as exc:
            raise store_error(exc, kind, name) from exc


class KubeObjects:
    """The cluster's `ObjectBackend`: the gateway's client, or the caller through impersonation."""

    def __init__(
        self, api: KubeApi, served: Served = lambda: None, *, alias_settle: float = ALIAS_SETTLE
    ) -> None:
        self.api = api
        self.served = served  # the gateway's catalog: Active means invokable here
        self.alias_settle = alias_settle
        self.written: dict[AliasKey, AliasRouting] = {}  # aliases written, not yet seen served

    def acting_as(self, caller: Caller | None) -> KubeObjectStore:
        api = self.api if caller is None else self.api.impersonating(caller.user, caller.groups)
        return KubeObjectStore(api, self.served, self.written)

    async def settled(self) -> None:
        """Functions and Versions report progress through status (the waiters poll it); an
        alias written by this gateway is waited for until its catalog routes it, within
        `alias_settle` seconds (after that the write stands and the watch catches up)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.alias_settle
        while self.written:
            catalog = self.served()
            if catalog is None:
                self.written.clear()  # no catalog here (a deploy client): nothing to wait for
                return
            for key, routing in list(self.written.items()):
                if routes_as_written(catalog, key, routing):
                    self.written.pop(key, None)
            if not self.written:
                return
            if loop.time() > deadline:
                self.written.clear()
                return
            await asyncio.sleep(0.05)  # the catalog is in memory; the watch updates it
