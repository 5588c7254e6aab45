"""Dev mode's object store: what the control API creates lives in the state folder, beside the
folder's manifests, which it lists but never changes.

Each API object is one JSON file, `STATE/api/objects/KIND/NAMESPACE/NAME.json`, written
atomically; it survives restarts. `resourceVersion` (the RevisionId) is a fresh UUID on every
write and `generation` grows when the spec changes, as the apiserver does. The folder's
objects are read-only: writing one is refused with the file to edit. Status is what the
gateway serves: after each catalog is applied, `observe` records every object's state (Active,
or Failed with the reason its invocations get), the dev-mode stand-in for the operator.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from kubelambda.api.common import API_VERSION
from kubelambda.api.resources import (
    ManifestError,
    Resource,
    parse_resource,
)
from kubelambda.serving.catalog import Catalog
from kubelambda.serving.control.states import served_status
from kubelambda.serving.control.store import (
    ALIAS,
    FUNCTION,
    KINDS,
    LAYER,
    MANIFEST,
    MAPPING,
    VERSION,
    AlreadyExists,
    Caller,
    Missing,
    Obj,
    ReadOnly,
    Stale,
)

Key = tuple[str, str, str]  # kind, namespace, name
Reload = Callable[[], Awaitable[None]]


def _manifest(path: Path, res: Resource) -> Obj:
    obj: Obj = res.model_dump(mode="json", by_alias=True, exclude_none=True)
    meta = obj.setdefault("metadata", {})
    meta["namespace"] = res.namespace
    meta["generation"] = 1
    meta["annotations"] = {**(meta.get("annotations") or {}), MANIFEST: str(path)}
    body = json.dumps(obj.get("spec"), sort_keys=True)
    meta["resourceVersion"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{path}:{body}"))
    obj.pop("status", None)
    return obj


class DevObjects:
    """The object backend of dev mode (`ObjectBackend`); acting as any caller is itself."""

    def __init__(self, root: Path, reload: Reload | None = None) -> None:
        self.root = root
        self.reload = reload
        self._folder: dict[Key, Obj] = {}
        self._observed: dict[Key, Obj] = {}
        self._dirty = False
        self._lock = asyncio.Lock()

    # ObjectBackend.

    def acting_as(self, caller: Caller | None) -> DevObjects:
        return self  # dev mode has no RBAC

    async def settled(self) -> None:
        if self._dirty and self.reload is not None:
            self._dirty = False
            await self.reload()

    # Files.

    def _path(self, kind: str, namespace: str, name: str) -> Path:
        return self.root / kind / namespace / f"{name}.json"

    def _read(self, kind: str, namespace: str, name: str) -> Obj | None:
        path = self._path(kind, namespace, name)
        try:
            found: Obj = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        return found

    def _write(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        path = self._path(obj["kind"], meta["namespace"], meta["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        staging.write_text(json.dumps(obj, indent=1, sort_keys=True))
        os.replace(staging, path)
        self._dirty = True
        return self._with_status(obj)

    def api_objects(self, kind: str | None = None) -> builtins.list[Obj]:
        kinds = [kind] if kind else list(KINDS)
        found = []
        for k in kinds:
            for path in sorted((self.root / k).glob("*/*.json")):
                try:
                    found.append(json.loads(path.read_text()))
                except (OSError, ValueError):
                    continue  # a file being replaced; the next read sees it
        return found

    def _with_status(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        status = self._observed.get((obj["kind"], meta.get("namespace", "default"), meta["name"]))
        out = copy.deepcopy(obj)
        if status is not None:
            out["status"] = copy.deepcopy(status)
        return out

    # ObjectStore.

    async def list(self, kind: str, namespace: str) -> list[Obj]:
        found = {
            o["metadata"]["name"]: o
            for o in self.api_objects(kind)
            if o["metadata"].get("namespace") == namespace
        }
        for (k, ns, name), obj in self._folder.items():
            if k == kind and ns == namespace:
                found[name] = obj  # the folder wins, as the loader serves it
        return [self._with_status(found[n]) for n in sorted(found)]

    async def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        found = self._folder.get((kind, namespace, name)) or self._read(kind, namespace, name)
        return None if found is None else self._with_status(found)

    async def create(self, kind: str, namespace: str, obj: Obj) -> Obj:
        async with self._lock:
            name = obj["metadata"]["name"]
            if (kind, namespace, name) in self._folder or self._read(kind, namespace, name):
                raise AlreadyExists(f"{kind} {name} already exists")
            body = copy.deepcopy(obj)
            body.pop("status", None)
            meta = body["metadata"]
            meta.update(
                namespace=namespace,
                resourceVersion=str(uuid.uuid4()),
                generation=1,
                uid=str(uuid.uuid4()),
                creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            body.setdefault("apiVersion", API_VERSION)
            return self._write(body)

    async def replace(self, kind: str, namespace: str, obj: Obj) -> Obj:
        async with self._lock:
            name = obj["metadata"]["name"]
            self._refuse_folder(kind, namespace, name)
            current = self._read(kind, namespace, name)
            if current is None:
                raise Missing(f"{kind} {name} does not exist")
            given = obj["metadata"].get("resourceVersion")
            if given and given != current["metadata"]["resourceVersion"]:
                raise Stale(f"{kind} {name} changed since it was read")
            body = copy.deepcopy(obj)
            body.pop("status", None)
            meta = {**current["metadata"], **body["metadata"]}
            meta["resourceVersion"] = str(uuid.uuid4())
            if body.get("spec") != current.get("spec"):
                meta["generation"] = int(current["metadata"].get("generation") or 1) + 1
            body["metadata"] = meta
            return self._write(body)

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        async with self._lock:
            self._refuse_folder(kind, namespace, name)
            try:
                self._path(kind, namespace, name).unlink()
            except FileNotFoundError:
                raise Missing(f"{kind} {name} does not exist") from None
            self._observed.pop((kind, namespace, name), None)
            self._dirty = True

    def _refuse_folder(self, kind: str, namespace: str, name: str) -> None:
        found = self._folder.get((kind, namespace, name))
        if found is not None:
            raise ReadOnly(kind, name, found["metadata"]["annotations"][MANIFEST])

    # The loader's side.

    def resources(self, problems: builtins.list[str]) -> builtins.list[Resource]:
        """The API's Functions, Versions, Aliases and mappings as resources for the loader;
        one that no longer validates is reported, not served."""
        out = []
        for obj in self.api_objects():
            if obj.get("kind") == LAYER:
                continue
            body = {k: v for k, v in obj.items() if k != "status"}
            body["metadata"] = {
                k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels")
            }
            try:
                out.append(parse_resource(body, where="API"))
            except ManifestError as exc:
                problems.extend(exc.problems)
        return out

    def set_folder(self, found: builtins.list[tuple[Path, Resource]]) -> None:
        """What the folder defines now (Versions numbered and frozen): listed, read-only."""
        self._folder = {
            (res.kind_name, res.namespace, res.name): _manifest(path, res) for path, res in found
        }

    def observe(self, catalog: Catalog) -> None:
        """Records the status of every object once `catalog` is served."""
        observed: dict[Key, Obj] = {}
        objects = [*self._folder.values(), *self.api_objects()]
        for obj in objects:
            kind, meta = obj["kind"], obj["metadata"]
            key = (kind, meta.get("namespace", "default"), meta["name"])
            generation = int(meta.get("generation") or 1)
            status = self._status(kind, obj, generation, catalog)
            if status is not None:
                observed[key] = status
        self._observed = observed

    def _status(self, kind: str, obj: Obj, generation: int, catalog: Catalog) -> Obj | None:
        namespace = obj["metadata"].get("namespace", "default")
        spec = obj["spec"]
        if kind == FUNCTION:
            entry = catalog.functions.get((namespace, obj["metadata"]["name"]))
            if entry is None:
                return None
            status = self._served(catalog, entry.latest.revision, generation)
            status["codeSha256"] = entry.latest.code_sha256
            numbers = [int(n) for n in entry.versions]
            status["latestVersion"] = max(numbers, default=0)
            return status
        if kind == VERSION:
            entry = catalog.functions.get((namespace, spec["functionName"]))
            version = entry.versions.get(str(spec.get("version"))) if entry else None
            if version is None:
                return None
            status = self._served(catalog, version.revision, generation)
            status["version"] = int(version.version)
            status["provisionedConcurrencyReady"] = int(spec.get("provisionedConcurrency") or 0)
            return status
        if kind == ALIAS:
            entry = catalog.functions.get((namespace, spec["functionName"]))
            name = spec.get("name") or obj["metadata"]["name"]
            if entry is None or name not in entry.aliases:
                return None
            return {
                "observedGeneration": generation,
                "provisionedConcurrencyReady": int(spec.get("provisionedConcurrency") or 0),
            }
        if kind == MAPPING:
            enabled = spec.get("enabled", True)
            return {
                "state": "Enabled" if enabled else "Disabled",
                "stateReason": "event-source pollers are not built into dev mode yet"
                if enabled
                else "USER_INITIATED",
                "observedGeneration": generation,
            }
        return None

    def _served(self, catalog: Catalog, revision: str, generation: int) -> Obj:
        target = catalog.targets.get(revision)
        problem = target.problem.message if target is not None and target.problem else None
        state = served_status(generation, problem)
        return state
