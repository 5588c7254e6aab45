"""The apiserver's background controllers: the garbage collector and the namespace controller.

After a write, the store schedules `collect_garbage` on its loop (soon, not inside the request),
so dependents disappear after their owner's deletion has been answered, as in a real cluster:
- dependents whose owners (by uid) are all gone are deleted (background propagation);
- dependents of an owner in foreground deletion are deleted, then its `foregroundDeletion`
  finalizer is removed;
- `propagationPolicy: Orphan` strips the owner's reference from dependents instead (`orphan`);
- a Namespace being deleted has its content deleted, then disappears.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from tests.cluster.semantics import JsonDict

if TYPE_CHECKING:
    from tests.cluster.store import Store


def orphan(store: Store, uid: str) -> None:
    """Strip references to the owner `uid` from its dependents (propagationPolicy: Orphan)."""
    for storage_key, objs in store.objects.items():
        rt = store.type_of(storage_key)
        for key, obj in list(objs.items()):
            refs = obj["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs):
                new = copy.deepcopy(obj)
                kept = [r for r in refs if r.get("uid") != uid]
                if kept:
                    new["metadata"]["ownerReferences"] = kept
                else:
                    del new["metadata"]["ownerReferences"]
                store.commit(rt, key, obj, new)


def collect_garbage(store: Store) -> None:
    """Run the collectors until nothing changes (a cascade takes one pass per level)."""
    store.gc_pending = False
    for _ in range(100):
        if not _gc_pass(store):
            return


def _finalizers(obj: JsonDict | None) -> list[str]:
    return list(obj["metadata"].get("finalizers") or ()) if obj else []


def _gc_pass(store: Store) -> bool:
    live = {o["metadata"]["uid"]: o for objs in store.objects.values() for o in objs.values()}
    owned_by = {
        r.get("uid") for o in live.values() for r in o["metadata"].get("ownerReferences") or ()
    }
    changed = False
    for storage_key, objs in store.objects.items():
        rt = store.type_of(storage_key)
        for key, obj in list(objs.items()):
            meta = obj["metadata"]
            ns, name = meta.get("namespace"), meta["name"]
            owners = [live.get(r.get("uid")) for r in meta.get("ownerReferences") or ()]
            namespace = live_namespace(store, ns) if rt.namespaced else None
            if not meta.get("deletionTimestamp"):
                orphaned = bool(owners) and all(o is None for o in owners)
                foreground = any("foregroundDeletion" in _finalizers(o) for o in owners)
                ns_ending = bool(namespace and namespace["metadata"].get("deletionTimestamp"))
                if orphaned or foreground or ns_ending:
                    store.delete(rt, ns, name, {})
                    changed = True
            elif "foregroundDeletion" in _finalizers(obj) and meta["uid"] not in owned_by:
                new = copy.deepcopy(obj)
                new["metadata"]["finalizers"] = [
                    f for f in _finalizers(obj) if f != "foregroundDeletion"
                ]
                store.update(rt, ns, name, new)
                changed = True
            elif _namespace_drained(rt.kind == "Namespace" and rt.group == "", obj, live):
                store.remove(rt, key)
                changed = True
    return changed


def _namespace_drained(is_namespace: bool, obj: JsonDict, live: dict[str, JsonDict]) -> bool:
    """A deleting Namespace with no finalizers left and no objects left in it."""
    name = obj["metadata"]["name"]
    if not is_namespace or _finalizers(obj):
        return False
    return not any(o["metadata"].get("namespace") == name for o in live.values())


def live_namespace(store: Store, name: str | None) -> JsonDict | None:
    return store.objects[("", "namespaces")].get((None, name)) if name else None
