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
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from kubelambda.api.function import FunctionSpec
from kubelambda.api.resources import (
    EventSourceMapping,
    Function,
    Resource,
    Version,
    load_manifests,
)
from kubelambda.gateway.catalog import Catalog, build_catalog
from kubelambda.runtime.code import folder_files, tree_digest
from kubelambda.runtime.toolchains import local_support


@dataclass
class LoadResult:
    catalog: Catalog
    problems: list[str] = field(default_factory=list)  # things that are not served
    warnings: list[str] = field(default_factory=list)  # served, but worth knowing
    mappings: list[EventSourceMapping] = field(default_factory=list)
    files: dict[tuple[str, str], Path] = field(default_factory=dict)  # (ns, function) -> manifest


class DevLoader:
    def __init__(self, folder: Path, state_dir: Path) -> None:
        self.folder = folder.resolve()
        self.state_dir = state_dir
        # (namespace, Version metadata.name) -> the spec it was frozen with.
        self._frozen: dict[tuple[str, str], Version] = {}
        # ... and the manifest spec it was frozen from, to notice later edits.
        self._requested: dict[tuple[str, str], dict[str, object]] = {}

    def load(self) -> LoadResult:
        """Reads the folder. Raises ManifestError when any manifest is invalid."""
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
                support = local_support(res.spec.runtime, res.spec.package_type)
                if support.refusal:  # refused now, not at its first invoke
                    problems.append(f"{path}: Function {res.name} is not served: {support.refusal}")
                    continue
                functions[key] = res
                files[key] = path
                base_dirs[id(res)] = path.parent
                digest = self._code_digest(res.spec, path.parent)
                if digest:
                    digests[id(res)] = digest
                resources.append(res)
                if support.note and support.note not in warnings:
                    warnings.append(support.note)
            elif isinstance(res, EventSourceMapping):
                mappings.append(res)
            elif not isinstance(res, Version):  # Versions are numbered and frozen below
                resources.append(res)

        versions = [(p, r) for p, r in found if isinstance(r, Version)]  # file order: stable
        for path, res in self._number_and_freeze(versions, functions, problems):
            resources.append(res)
            base_dirs[id(res)] = path.parent
        catalog = build_catalog(resources, base_dirs, digests)
        problems += catalog.problems
        return LoadResult(catalog, problems, warnings, mappings, files)

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
