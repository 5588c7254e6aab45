"""The control API's object store in a cluster: the API server itself, acting as the caller.

Every control call becomes a create, a PUT with the resourceVersion it read (so a RevisionId is
Kubernetes' own optimistic-concurrency check), or a delete of Function, Version, Alias and
EventSourceMapping objects, so `kubectl get fn` and the API always agree. With a caller named
by authentication, requests carry Impersonate-User/-Group and RBAC decides who may deploy.
LayerVersion records are ConfigMaps labelled `kubelambda.dev/layer-version`, whose one key
holds the record's spec. The mapping between store calls and API requests is pure
(`path_of`, `to_configmap`, `from_configmap`, `store_error`) and tested directly.
"""

from __future__ import annotations

import json

from kubelambda.api.common import API_VERSION, GROUP, VERSION
from kubelambda.api.resources import KINDS
from kubelambda.kube.client import ApiError, JsonDict, KubeApi, collection
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

LAYER_LABEL = "kubelambda.dev/layer-version"
LAYER_KEY = "layer-version.json"


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

    def __init__(self, api: KubeApi) -> None:
        self.api = api

    async def list(self, kind: str, namespace: str) -> list[Obj]:
        try:
            if kind == LAYER:
                found = await self.api.list(path_of(kind, namespace), f"{LAYER_LABEL}=true")
                return [from_configmap(doc) for doc in found.get("items") or []]
            found = await self.api.list(path_of(kind, namespace))
        except ApiError as exc:
            raise store_error(exc, kind, "*") from exc
        items: list[Obj] = []
        for doc in found.get("items") or []:
            items.append({"apiVersion": API_VERSION, "kind": kind, **doc})
        return items

    async def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            doc = await self.api.get(path_of(kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise store_error(exc, kind, name) from exc
        return from_configmap(doc) if kind == LAYER else doc

    async def create(self, kind: str, namespace: str, obj: Obj) -> Obj:
        body = to_configmap(obj) if kind == LAYER else obj
        name = obj["metadata"]["name"]
        try:
            doc = await self.api.create(path_of(kind, namespace), body)
        except ApiError as exc:
            raise store_error(exc, kind, name, creating=True) from exc
        return from_configmap(doc) if kind == LAYER else doc

    async def replace(self, kind: str, namespace: str, obj: Obj) -> Obj:
        name = obj["metadata"]["name"]
        body = (
            to_configmap(obj) if kind == LAYER else {k: v for k, v in obj.items() if k != "status"}
        )
        try:
            doc = await self.api.replace(path_of(kind, namespace, name), body)
        except ApiError as exc:
            raise store_error(exc, kind, name) from exc
        return from_configmap(doc) if kind == LAYER else doc

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            await self.api.delete(path_of(kind, namespace, name))
        except ApiError as exc:
            raise store_error(exc, kind, name) from exc


class KubeObjects:
    """The cluster's `ObjectBackend`: the gateway's client, or the caller through impersonation."""

    def __init__(self, api: KubeApi, impersonate: bool = True) -> None:
        self.api = api
        self.impersonate = impersonate

    def acting_as(self, caller: Caller | None) -> KubeObjectStore:
        if caller is None or not self.impersonate:
            return KubeObjectStore(self.api)
        return KubeObjectStore(self.api.impersonating(caller.user, caller.groups))

    async def settled(self) -> None:
        """The operator reports progress through status; nothing to wait for here."""
