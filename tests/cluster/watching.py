"""Watch plumbing of the emulated apiserver: committed changes and the streams that see them.

Each committed change is offered to every open watch. A watch filters by resource, namespace and
selectors, and, like the apiserver's watch cache, turns an object that starts or stops matching
its selector into ADDED or DELETED.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tests.cluster.resources import ResourceType
from tests.cluster.semantics import ApiError, JsonDict, Selector

if TYPE_CHECKING:
    from tests.cluster.store import Store


@dataclass(frozen=True)
class Change:
    rv: int
    storage_key: tuple[str, str]
    old: JsonDict | None  # None for a creation
    new: JsonDict  # the last state for a deletion
    deleted: bool = False


@dataclass(eq=False)
class Watcher:
    """One watch stream: the changes of one resource that pass its namespace and selector."""

    rt: ResourceType
    namespace: str | None
    selector: Selector
    queue: asyncio.Queue[tuple[str, JsonDict]] = field(default_factory=asyncio.Queue)

    def _passes(self, obj: JsonDict | None) -> bool:
        if obj is None:
            return False
        ns_ok = self.namespace is None or obj["metadata"].get("namespace") == self.namespace
        return ns_ok and self.selector.matches(obj)

    def offer(self, change: Change) -> None:
        if change.storage_key != self.rt.storage_key:
            return
        was, now = self._passes(change.old), self._passes(change.new)
        # An object that starts or stops matching the selector is ADDED or DELETED for this
        # watch, as the apiserver's watch cache does it.
        if change.deleted:
            kind = "DELETED" if now else ""
        elif was and now:
            kind = "MODIFIED"
        elif now:
            kind = "ADDED"
        else:
            kind = "DELETED" if was else ""
        if kind:
            body = copy.deepcopy(change.new)
            body["apiVersion"] = self.rt.api_version
            self.queue.put_nowait((kind, body))


def open_watch(
    store: Store,
    rt: ResourceType,
    ns: str | None,
    selector: Selector,
    since: str | None,
    initial: bool,
) -> Watcher:
    """Open a watch (the caller discards it); 410 for a compacted resourceVersion."""
    watcher = Watcher(rt, ns, selector)
    if not since or since == "0" or initial:
        for obj in store.list(rt, ns, selector):
            watcher.queue.put_nowait(("ADDED", obj))
    else:
        try:
            since_rv = int(since)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"invalid resource version: {since}") from exc
        if since_rv < store.compacted_rv:
            raise ApiError(
                410, "Expired", f"too old resource version: {since_rv} ({store.compacted_rv})"
            )
        for change in store.log:
            if change.rv > since_rv:
                watcher.offer(change)
    if initial:
        end = {"k8s.io/initial-events-end": "true"}
        meta = {"resourceVersion": str(store.rv), "annotations": end}
        watcher.queue.put_nowait(("BOOKMARK", {"kind": rt.kind, "metadata": meta}))
    store.watchers.add(watcher)
    return watcher
