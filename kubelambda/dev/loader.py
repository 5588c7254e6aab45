"""Dev mode's control plane: a folder of manifests becomes a `Catalog`, as the operator would.

What the operator does in a cluster happens here at load time:

- **Version numbers.** A Version keeps its explicit `spec.version`. Versions without one are
  numbered after the highest explicit number of their function, in a stable order: by file path,
  then by position in the file.
- **Snapshots.** A Version without `spec.function` freezes the Function's spec when first seen.
  A Version whose code is a local folder gets a content-addressed copy of that folder under the
  state folder, so editing the folder later changes `$LATEST` only. A Version never changes
  while `kubelambda dev` runs: a changed Version manifest is reported and ignored, as the
  apiserver's CEL rules would refuse it.
- **`$LATEST`** is recomputed on every load, with a digest of its code folder, so a code edit
  makes a new revision: new invocations get fresh environments; in-flight ones finish on the old.
"""

from __future__ import annotations

import shutil
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kubelambda.api.common import PYTHON_RUNTIMES
from kubelambda.api.function import FunctionSpec
from kubelambda.api.resources import (
    EventSourceMapping,
    Function,
    Resource,
    Version,
    load_manifests,
)
from kubelambda.runtime.code import folder_files, tree_digest
from kubelambda.serving.catalog import Catalog, build_catalog


@dataclass
class LoadResult:
    catalog: Catalog
    problems: list[str] = field(default_factory=list)  # things that are not served
    warnings: list[str] = field(default_factory=list)  # served, but worth knowing
    mappings: list[EventSourceMapping] = field(default_factory=list)
    files: dict[tuple[str, str], Path] = field(default_factory=dict)  # (ns, function) -> manifest
    # What the folder defines, with its file (Versions numbered and frozen): the API lists it.
    found: list[tuple[Path, Resource]] = field(default_factory=list)


def local_python_warning(runtime: str | None) -> str | None:
    """Dev mode runs Python functions on the interpreter it runs on, whatever the runtime says."""
    if runtime not in PYTHON_RUNTIMES:
        return None
    local = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if runtime == local:
        return None
    return f"{runtime} functions run on the local {local} interpreter"


class DevLoader:
    def __init__(self, folder: Path, state_dir: Path) -> None:
        self.folder = folder.resolve()
        self.state_dir = state_dir
        # (namespace, Version metadata.name) -> the spec it was frozen with.
        self._frozen: dict[tuple[str, str], Version] = {}
        # ... and the manifest spec it was frozen from, to notice later edits.
        self._requested: dict[tuple[str, str], dict[str, object]] = {}

    def load(self, extra: Sequence[Resource] = ()) -> LoadResult:
        """Reads the folder, then adds `extra` (what the control API created: already numbered
        and frozen). Raises ManifestError when any manifest of the folder is invalid."""
        found = load_manifests(self.folder)
        problems: list[str] = []
        warnings: list[str] = []
        base_dirs: dict[int, Path] = {}
        digests: dict[int, str] = {}
        functions: dict[tuple[str, str], Function] = {}
        files: dict[tuple[str, str], Path] = {}
        resources: list[Resource] = []
        mappings: list[EventSourceMapping] = []
        for path, res in found:
            if isinstance(res, Function):
                key = (res.namespace, res.name)
                if key in functions:
                    problems.append(f"{path}: Function {res.namespace}/{res.name} is defined twice")
                    continue
                functions[key] = res
                files[key] = path
                base_dirs[id(res)] = path.parent
                digest = self._code_digest(res.spec, path.parent)
                if digest:
                    digests[id(res)] = digest
                resources.append(res)
                note = local_python_warning(res.spec.runtime)
                if note and note not in warnings:
                    warnings.append(note)
            elif isinstance(res, EventSourceMapping):
                mappings.append(res)
            elif not isinstance(res, Version):  # Versions are numbered and frozen below
                resources.append(res)

        versions = [(p, r) for p, r in found if isinstance(r, Version)]  # file order: stable
        listed = [(p, r) for p, r in found if not isinstance(r, Version)]
        for path, res in self._number_and_freeze(versions, functions, problems):
            resources.append(res)
            base_dirs[id(res)] = path.parent
            listed.append((path, res))
        folder_keys = {(r.kind_name, r.namespace, r.name) for _, r in found}
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

    def _code_digest(self, spec: FunctionSpec, base: Path) -> str | None:
        if spec.code.path is None:
            return None
        folder = (base / spec.code.path).resolve()
        if folder.is_dir():
            return tree_digest(folder_files(folder))
        return None

    def _number_and_freeze(
        self,
        versions: list[tuple[Path, Version]],
        functions: dict[tuple[str, str], Function],
        problems: list[str],
    ) -> list[tuple[Path, Version]]:
        highest: dict[tuple[str, str], int] = defaultdict(int)
        for _, v in versions:
            key = (v.namespace, v.spec.function_name)
            highest[key] = max(highest[key], v.spec.version or 0)
        out: list[tuple[Path, Version]] = []
        for path, version in versions:
            key = (version.namespace, version.name)
            frozen = self._frozen.get(key)
            if frozen is not None:
                if self._requested[key] != version.spec.to_manifest():
                    problems.append(
                        f"{path}: Version {version.name} is immutable; the change is ignored "
                        "(create a new Version instead)"
                    )
                out.append((path, frozen))
                continue
            function = functions.get((version.namespace, version.spec.function_name))
            if function is None:
                problems.append(f"{path}: Version {version.name}: function not found")
                continue
            spec = version.spec.model_copy(deep=True)
            if spec.version is None:
                fkey = (version.namespace, spec.function_name)
                highest[fkey] += 1
                spec.version = highest[fkey]
            snapshot = spec.function or function.spec.model_copy(deep=True)
            spec.function = self._snapshot_code(snapshot, path.parent, problems, version.name)
            frozen = version.model_copy(update={"spec": spec})
            self._requested[key] = version.spec.to_manifest()
            self._frozen[key] = frozen
            out.append((path, frozen))
        return out

    def _snapshot_code(
        self, spec: FunctionSpec, base: Path, problems: list[str], name: str
    ) -> FunctionSpec:
        if spec.code.path is None:
            return spec
        source = (base / spec.code.path).resolve()
        if not source.exists():
            problems.append(f"Version {name}: code path {source} does not exist")
            return spec
        if source.is_dir():
            digest = tree_digest(folder_files(source))
            target = self.state_dir / "versions" / digest
            if not target.exists():
                staging = target.with_name(f".{digest}.tmp")
                shutil.rmtree(staging, ignore_errors=True)
                shutil.copytree(source, staging)
                staging.rename(target)
        else:
            target = self.state_dir / "versions" / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        code = spec.code.model_copy(update={"path": str(target)})
        return spec.model_copy(update={"code": code})
