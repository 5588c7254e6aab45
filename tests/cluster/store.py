"""The emulated apiserver's object store: the state machine behind every verb, without HTTP.

It keeps objects per resource, assigns metadata (uid, resourceVersion from one global counter,
creationTimestamp, generation, generateName), enforces optimistic concurrency, isolates the status
subresource, runs the admission steps the real apiserver runs for custom resources (schema.py),
honours finalizers, graceful pod deletion and propagation policies, and runs a background garbage
collector (ownerReferences, foreground deletion, namespace termination). Every committed change is
logged with its resourceVersion so that watches can resume from one, as the watch cache does.

All methods are synchronous and run on the server's event loop, so each verb is atomic.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import datetime
import uuid
from typing import Any

from tests.cluster import admission, collector, schema, watching
from tests.cluster.resources import BUILTIN_RESOURCES, ResourceType, crd_resource_types
from tests.cluster.semantics import (
    PATCHERS,
    ApiError,
    JsonDict,
    Selector,
    conflict,
    generate_name,
    invalid,
    name_problem,
    not_found,
)
from tests.cluster.watching import Change, Watcher

ObjKey = tuple[str | None, str]  # (namespace, name)
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    def __init__(self, *, history: int = 10_000) -> None:
        self.types: dict[tuple[str, str, str], ResourceType] = {}
        self.objects: dict[tuple[str, str], dict[ObjKey, JsonDict]] = {}
        self.rv = 0
        self.log: collections.deque[Change] = collections.deque(maxlen=history)
        self.compacted_rv = 0  # watches from before this resourceVersion get 410 Gone
        self.watchers: set[Watcher] = set()
        self.gc_pending = False
        for rt in BUILTIN_RESOURCES:
            self.register(rt)
        for ns in DEFAULT_NAMESPACES:
            self.create(self.lookup("", "v1", "namespaces"), None, {"metadata": {"name": ns}})

    # --- types --------------------------------------------------------------------------------

    def register(self, rt: ResourceType) -> None:
        self.types[(rt.group, rt.version, rt.plural)] = rt
        self.objects.setdefault(rt.storage_key, {})

    def register_crd(self, crd: JsonDict) -> list[ResourceType]:
        types = crd_resource_types(crd)
        for rt in types:
            self.register(rt)
        return types

    def lookup(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.types.get((group, version, plural))
        if rt is None:
            gv = f"{group}/{version}" if group else version
            raise ApiError(
                404, "NotFound", f'the server could not find the requested resource "{gv}/{plural}"'
            )
        return rt

    def type_of(self, storage_key: tuple[str, str]) -> ResourceType:
        return next(rt for rt in self.types.values() if rt.storage_key == storage_key)

    # --- reads --------------------------------------------------------------------------------

    def _current(self, rt: ResourceType, ns: str | None, name: str) -> JsonDict:
        obj = self.objects[rt.storage_key].get((ns if rt.namespaced else None, name))
        if obj is None:
            raise not_found(rt.qualified, name)
        return obj

    def _out(self, rt: ResourceType, obj: JsonDict) -> JsonDict:
        body = copy.deepcopy(obj)
        body["apiVersion"] = rt.api_version
        return body

    def get(self, rt: ResourceType, ns: str | None, name: str) -> JsonDict:
        return self._out(rt, self._current(rt, ns, name))

    def list(self, rt: ResourceType, ns: str | None, selector: Selector) -> list[JsonDict]:
        items = [
            self._out(rt, obj)
            for (obj_ns, _), obj in sorted(self.objects[rt.storage_key].items(), key=_sort_key)
            if (ns is None or obj_ns == ns) and selector.matches(obj)
        ]
        return items

    # --- writes -------------------------------------------------------------------------------

    def create(
        self,
        rt: ResourceType,
        ns: str | None,
        body: JsonDict,
        *,
        dry_run: bool = False,
        field_validation: str = "",
    ) -> JsonDict:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace") not in (None, "", ns):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on"
                    " the request",
                )
            namespace = self._current(self.lookup("", "v1", "namespaces"), None, ns or "default")
            if namespace["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    403,
                    "Forbidden",
                    f"unable to create new content in namespace {ns} because it is being"
                    " terminated",
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(
                    rt.kind_group,
                    "",
                    [("metadata.name", "Required value: name or generateName is required")],
                )
            meta["name"] = generate_name(meta["generateName"])
        problem = name_problem(meta["name"])
        if problem:
            raise invalid(
                rt.kind_group,
                meta["name"],
                [("metadata.name", f'Invalid value: "{meta["name"]}": {problem}')],
            )
        key = (meta.get("namespace"), meta["name"])
        if key in self.objects[rt.storage_key]:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{rt.qualified} "{meta["name"]}" already exists',
                {"name": meta["name"]},
            )
        for transient in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(transient, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rt.generation:
            meta["generation"] = 1
        if "status" in rt.subresources:
            obj.pop("status", None)  # the status of a new object is the controllers' to write
        obj = self._admit(rt, obj, None, field_validation)
        if dry_run:
            return self._out(rt, obj)
        return self.commit(rt, key, None, obj)

    def update(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        body: JsonDict,
        *,
        subresource: str = "",
        dry_run: bool = False,
        field_validation: str = "",
    ) -> JsonDict:
        old = self._current(rt, ns, name)
        new = copy.deepcopy(body)
        meta = new.setdefault("metadata", {})
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt.qualified, name)
        if meta.get("name", name) != name:
            raise ApiError(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        if subresource == "status" and "status" in rt.subresources:
            new = {**copy.deepcopy(old), "status": new.get("status")}
            if new["status"] is None:
                new.pop("status")
        elif subresource:
            raise ApiError(404, "NotFound", f"subresource {subresource} is not emulated")
        elif "status" in rt.subresources:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        # What clients may not change on an update: identity and the server-owned metadata.
        for owned in (
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "generation",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if owned in old["metadata"]:
                new["metadata"][owned] = old["metadata"][owned]
            else:
                new["metadata"].pop(owned, None)
        if old["metadata"].get("deletionTimestamp"):
            finalizers = new["metadata"].get("finalizers") or ()
            added = set(finalizers) - set(old["metadata"].get("finalizers") or ())
            if added:
                raise invalid(
                    rt.kind_group,
                    name,
                    [
                        (
                            "metadata.finalizers",
                            "Forbidden: no new finalizers can be added if the object is being"
                            " deleted",
                        )
                    ],
                )
        new = self._admit(rt, new, old, field_validation)
        if rt.generation and admission.spec_part(new, rt) != admission.spec_part(old, rt):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        if new == old:
            return self._out(rt, old)  # a no-op write: no new resourceVersion, no watch event
        if dry_run:
            return self._out(rt, new)
        key = (new["metadata"].get("namespace"), name)
        deleting = new["metadata"].get("deletionTimestamp")
        released = not new["metadata"].get("finalizers")
        # A bound pod waits for its kubelet's confirmation, even with no finalizers left.
        if deleting and released and not admission.graceful_pending(rt, new):
            return self.remove(rt, key)
        return self.commit(rt, key, old, new)

    def patch(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str = "",
        dry_run: bool = False,
        field_validation: str = "",
    ) -> JsonDict:
        patcher = PATCHERS.get(content_type)
        if patcher is None:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types"
                f" include: {', '.join(PATCHERS)} (server-side apply is not emulated)",
            )
        if content_type == "application/strategic-merge-patch+json" and rt.custom:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "strategic merge patch is not supported for custom resources",
            )
        current = self.get(rt, ns, name)
        patched = patcher(current, patch)
        if not isinstance(patched, dict):
            raise ApiError(422, "Invalid", "the patch did not produce an object")
        # A resourceVersion in the patched result is a precondition, as the apiserver treats it.
        return self.update(
            rt,
            ns,
            name,
            patched,
            subresource=subresource,
            dry_run=dry_run,
            field_validation=field_validation,
        )

    def bind(self, ns: str, name: str, binding: JsonDict) -> JsonDict:
        """POST pods/{name}/binding: the scheduler's way of setting spec.nodeName."""
        rt = self.lookup("", "v1", "pods")
        pod = self._current(rt, ns, name)
        if pod["spec"].get("nodeName"):
            raise ApiError(
                409,
                "Conflict",
                f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"',
            )
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = binding["target"]["name"]
        new["status"].setdefault("conditions", []).append(
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}
        )
        return self.commit(rt, (ns, name), pod, new)

    def delete(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        options: JsonDict,
        *,
        dry_run: bool = False,
    ) -> JsonDict:
        old = self._current(rt, ns, name)
        key = (old["metadata"].get("namespace"), name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") not in (None, old["metadata"]["uid"]):
            raise conflict(rt.qualified, name)
        if pre.get("resourceVersion") not in (None, old["metadata"]["resourceVersion"]):
            raise conflict(rt.qualified, name)
        if dry_run:
            return self._out(rt, old)
        new = copy.deepcopy(old)
        meta = new["metadata"]
        policy = options.get("propagationPolicy") or (
            "Orphan" if options.get("orphanDependents") else "Background"
        )
        if policy == "Orphan":
            collector.orphan(self, meta["uid"])
        elif policy == "Foreground" and not meta.get("deletionTimestamp"):
            meta["finalizers"] = [*meta.get("finalizers", []), "foregroundDeletion"]
        if rt.kind == "Pod" and rt.group == "" and new["spec"].get("nodeName"):
            grace = options.get("gracePeriodSeconds")
            if grace is None:
                grace = new["spec"].get("terminationGracePeriodSeconds", 30)
            current = meta.get("deletionGracePeriodSeconds")
            # The kubelet finishes a graceful deletion by deleting again with a grace of 0.
            meta["deletionGracePeriodSeconds"] = grace if current is None else min(grace, current)
        elif "deletionTimestamp" not in meta:
            meta["deletionGracePeriodSeconds"] = 0
        meta.setdefault("deletionTimestamp", now_rfc3339())
        if rt.kind == "Namespace" and rt.group == "":
            new.setdefault("status", {})["phase"] = "Terminating"
            self._schedule_gc()
            return self.commit(rt, key, old, new) if new != old else self._out(rt, old)
        if meta.get("finalizers") or admission.graceful_pending(rt, new):
            return self.commit(rt, key, old, new) if new != old else self._out(rt, old)
        return self.remove(rt, key)

    # --- internals ----------------------------------------------------------------------------

    def _admit(self, rt: ResourceType, obj: JsonDict, old: JsonDict | None, fv: str) -> JsonDict:
        obj = admission.builtin_defaults(rt, obj, old)
        if rt.kind == "CustomResourceDefinition":
            self.register_crd(obj)  # registered at admission so a bad CRD fails the request
        return schema.admit_custom_object(rt, obj, old, fv)

    def commit(
        self, rt: ResourceType, key: ObjKey, old: JsonDict | None, new: JsonDict
    ) -> JsonDict:
        self.rv += 1
        new["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[rt.storage_key][key] = new
        self._publish(Change(self.rv, rt.storage_key, old, copy.deepcopy(new)))
        if (
            old is None
            or new["metadata"].get("ownerReferences") != old["metadata"].get("ownerReferences")
            or new["metadata"].get("deletionTimestamp")
        ):
            self._schedule_gc()
        return self._out(rt, new)

    def remove(self, rt: ResourceType, key: ObjKey) -> JsonDict:
        obj = self.objects[rt.storage_key].pop(key)
        self.rv += 1
        last = copy.deepcopy(obj)
        last["metadata"]["resourceVersion"] = str(self.rv)
        self._publish(Change(self.rv, rt.storage_key, obj, last, deleted=True))
        self._schedule_gc()
        return self._out(rt, last)

    def _publish(self, change: Change) -> None:
        if len(self.log) == self.log.maxlen:
            self.compacted_rv = self.log[0].rv
        self.log.append(change)
        for watcher in list(self.watchers):
            watcher.offer(change)

    def watch(
        self, rt: ResourceType, ns: str | None, selector: Selector, since: str | None, initial: bool
    ) -> Watcher:
        """Open a watch (the caller discards it); 410 for a compacted resourceVersion."""
        return watching.open_watch(self, rt, ns, selector, since, initial)

    def _schedule_gc(self) -> None:
        if self.gc_pending:
            return
        self.gc_pending = True
        try:
            asyncio.get_running_loop().call_soon(collector.collect_garbage, self)
        except RuntimeError:  # no loop: used synchronously (unit tests of the store)
            collector.collect_garbage(self)


def _sort_key(item: tuple[ObjKey, JsonDict]) -> tuple[str, str]:
    (ns, name), _ = item
    return (ns or "", name)
