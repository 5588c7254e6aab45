"""Dev mode's control plane: a folder of manifests becomes a `Catalog`, as the operator would.

What the operator does in a cluster happens here at load time:

- **Checks.** The folder is read with `api.manifests` and checked across resources with
  `api.checks.check_set`, the same function `kubelambda validate` runs: what validate passes is
  served, what it reports is refused here with the same line. A function this machine cannot run
  (`runtime.toolchains`) is refused too, with the reason and what to do.
- **Version numbers.** A Version keeps its explicit `spec.version`; the others are numbered after
  the highest number of their function, in a stable order (by file path, then position).
- **Snapshots, durable.** A Version without `spec.function` freezes the Function's spec when first
  seen; a local code folder (or zip, or layer) is copied, content-addressed, into the state
  folder, and the snapshot is written to `STATE/versions/records/NAMESPACE/NAME.json`. So a
  Version never changes once published, across restarts too: a later edit of the Function or
  its code changes `$LATEST` only, and a changed Version manifest is reported and ignored, as
  the apiserver's CEL rules would refuse it.
- **Control API objects.** What CreateFunction, PublishVersion, ... stored (`dev.objects`,
  already numbered and frozen) is added after the folder; a folder manifest of the same name
  shadows it, and the problem is reported.
- **`$LATEST`** is recomputed on every load, with a digest of its code folder, so a code edit
  makes a new revision: new invocations get fresh environments; in-flight ones finish on the old.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from kubelambda.api.checks import check_set, number_versions
from kubelambda.api.function import FunctionSpec
from kubelambda.api.manifests import Document, read_paths
from kubelambda.api.resources import EventSourceMapping, Function, Resource, Version
from kubelambda.dev.secrets import SecretsFile
from kubelambda.runtime.archive import folder_files, tree_digest
from kubelambda.runtime.toolchains import local_support
from kubelambda.serving.catalog import Catalog, build_catalog
from kubelambda.serving.secrets import unresolved


@dataclass
class LoadResult:
    catalog: Catalog
    problems: list[str] = field(default_factory=list)  # things that are not served
    warnings: list[str] = field(default_factory=list)  # served, but worth knowing
    mappings: list[EventSourceMapping] = field(default_factory=list)
    files: dict[tuple[str, str], Path] = field(default_factory=dict)  # (ns, function) -> manifest
    # What the folder defines, with its file (Versions numbered and frozen): the API lists it.
    found: list[tuple[Path, Resource]] = field(default_factory=list)


@dataclass
class _Snapshot:
    requested: dict[str, object]  # the Version manifest's spec it was frozen from
    version: Version  # numbered, with the frozen function spec


class DevLoader:
    def __init__(self, folder: Path, state_dir: Path) -> None:
        self.folder = folder.resolve()
        self.state_dir = state_dir
        self._snapshots: dict[tuple[str, str], _Snapshot] = {}  # (namespace, Version name)
        self.secrets: SecretsFile | None = None  # --secrets FILE, read by the server
        self._restore()

    # -- the snapshot store ----------------------------------------------------------------
    def _record(self, key: tuple[str, str]) -> Path:
        return self.state_dir / "versions" / "records" / key[0] / f"{key[1]}.json"

    def _restore(self) -> None:
        store = self.state_dir / "versions" / "records"
        for record in sorted(store.glob("*/*.json")) if store.is_dir() else []:
            try:
                data = json.loads(record.read_text())
                version = Version.model_validate(data["version"])
            except (OSError, ValueError, KeyError, ValidationError):
                continue  # a torn or foreign file: that Version is published afresh
            key = (version.namespace, version.name)
            self._snapshots[key] = _Snapshot(data["requested"], version)

    def _persist(self, key: tuple[str, str], snapshot: _Snapshot) -> None:
        target = self._record(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "requested": snapshot.requested,
            "version": snapshot.version.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        staging = target.with_suffix(".tmp")
        staging.write_text(json.dumps(body, indent=1, sort_keys=True))
        staging.replace(target)  # atomic: a crash leaves the old record or the new one

    # -- loading ---------------------------------------------------------------------------
    def load(self, extra: Sequence[Resource] = ()) -> LoadResult:
        """Reads the folder, then adds `extra` (what the control API created: already numbered
        and frozen). Raises ManifestError when any manifest of the folder is invalid."""
        reading = read_paths([self.folder])
        reading.raise_problems()
        documents = reading.documents
        versions = [d for d in documents if isinstance(d.resource, Version)]
        pinned = {
            id(d): snap.version.spec.version
            for d in versions
            if (snap := self._snapshots.get(_key(d))) is not None and snap.version.spec.version
        }
        set_problems = check_set(documents, pinned=pinned)
        refused = {id(p.document) for p in set_problems}
        problems = [p.line for p in set_problems]
        numbers = number_versions(versions, pinned)

        warnings: list[str] = []
        base_dirs: dict[int, Path] = {}
        digests: dict[int, str] = {}
        functions: dict[tuple[str, str], Function] = {}
        files: dict[tuple[str, str], Path] = {}
        resources: list[Resource] = []
        mappings: list[EventSourceMapping] = []
        # Listed by the API, read-only: every folder object, Versions as numbered and frozen.
        listed = [(d.path, d.resource) for d in documents if not isinstance(d.resource, Version)]
        for doc in documents:
            res = doc.resource
            if id(doc) in refused:
                continue
            if isinstance(res, Function):
                support = local_support(res.spec.runtime, res.spec.package_type)
                if support.refusal:  # refused now, not at its first invoke
                    problems.append(doc.line(f"not served in dev mode: {support.refusal}"))
                    continue
                missing = self._secret_problems(res)
                if missing:
                    problems += [doc.line(line) for line in missing]
                    continue
                key = (res.namespace, res.name)
                functions[key] = res
                files[key] = doc.path
                base_dirs[id(res)] = doc.path.parent
                digest = self._code_digest(res.spec, doc.path.parent)
                if digest:
                    digests[id(res)] = digest
                resources.append(res)
                if support.note and support.note not in warnings:
                    warnings.append(support.note)
            elif isinstance(res, EventSourceMapping):
                mappings.append(res)
            elif isinstance(res, Version):
                frozen = self._freeze(doc, numbers[id(doc)], functions, problems)
                if frozen is not None:
                    resources.append(frozen)
                    base_dirs[id(frozen)] = doc.path.parent
                    listed.append((doc.path, frozen))
            else:
                resources.append(res)
        folder_keys = {(r.kind_name, r.namespace, r.name) for r in (d.resource for d in documents)}
        for res in extra:
            if (res.kind_name, res.namespace, res.name) in folder_keys:
                problems.append(
                    f"{res.kind_name} {res.namespace}/{res.name} created through the API is "
                    "shadowed by a manifest of the same name"
                )
            elif isinstance(res, Function) and (res.namespace, res.name) in functions:
                problems.append(f"API Function {res.name}: a manifest defines it; not served")
            elif isinstance(res, EventSourceMapping):
                mappings.append(res)
            else:
                resources.append(res)
                if isinstance(res, Function) and res.spec.code.sha256:
                    digests[id(res)] = res.spec.code.sha256
        catalog = build_catalog(resources, base_dirs, digests)
        problems += catalog.problems
        return LoadResult(catalog, problems, warnings, mappings, files, listed)

    def _secret_problems(self, function: Function) -> list[str]:
        refs = function.spec.environment.secret_key_refs if function.spec.environment else {}
        if not refs:
            return []
        if self.secrets is None:
            return [
                "spec.environment.secretKeyRefs: dev mode reads Secret values from "
                "`kubelambda dev --secrets FILE` (dotenv or YAML); none was given"
            ]
        return unresolved(function.namespace, refs, self.secrets.lookup, self.secrets.source)

    def _code_digest(self, spec: FunctionSpec, base: Path) -> str | None:
        if spec.code.path is None:
            return None
        folder = (base / spec.code.path).resolve()
        if folder.is_dir():
            return tree_digest(folder_files(folder))
        return None

    def _freeze(
        self,
        doc: Document,
        number: int,
        functions: dict[tuple[str, str], Function],
        problems: list[str],
    ) -> Version | None:
        version = doc.resource
        assert isinstance(version, Version)
        key = _key(doc)
        requested = version.spec.to_manifest()
        snapshot = self._snapshots.get(key)
        if snapshot is not None:
            if snapshot.requested != requested:
                problems.append(
                    doc.line(
                        "spec: a Version is immutable; the change is ignored "
                        "(create a new Version instead)"
                    )
                )
            return snapshot.version
        function = functions.get((version.namespace, version.spec.function_name))
        if function is None:  # refused above (a runtime this machine cannot run)
            return None
        spec = version.spec.model_copy(deep=True)
        spec.version = number
        frozen_spec = spec.function or function.spec.model_copy(deep=True)
        spec.function = self._snapshot_code(frozen_spec, doc.path.parent)
        frozen = version.model_copy(update={"spec": spec})
        snapshot = _Snapshot(requested, frozen)
        self._snapshots[key] = snapshot
        self._persist(key, snapshot)
        return frozen

    def _copy(self, source: Path) -> Path:
        """A content-addressed copy of a code folder or zip in the state folder."""
        store = self.state_dir / "versions" / "code"
        store.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            target = store / tree_digest(folder_files(source))
            if not target.exists():
                staging = target.with_name(f".{target.name}.tmp")
                shutil.rmtree(staging, ignore_errors=True)
                shutil.copytree(source, staging)
                staging.rename(target)
            return target
        target = store / f"{hashlib.sha256(source.read_bytes()).hexdigest()}{source.suffix}"
        if not target.exists():
            staging = target.with_name(f".{target.name}.tmp")
            shutil.copy2(source, staging)
            staging.rename(target)
        return target

    def _snapshot_code(self, spec: FunctionSpec, base: Path) -> FunctionSpec:
        """The spec with its local code and layer paths replaced by frozen copies."""
        update: dict[str, object] = {}
        if spec.code.path is not None:
            copy = self._copy((base / spec.code.path).resolve())
            update["code"] = spec.code.model_copy(update={"path": str(copy)})
        if any(layer.path for layer in spec.layers):
            update["layers"] = [
                layer.model_copy(update={"path": str(self._copy((base / layer.path).resolve()))})
                if layer.path
                else layer
                for layer in spec.layers
            ]
        return spec.model_copy(update=update) if update else spec


def _key(doc: Document) -> tuple[str, str]:
    return (doc.resource.namespace, doc.resource.name)
