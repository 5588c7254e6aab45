"""The gateway's view of what can be invoked: functions, their versions and aliases.

`build_catalog` turns validated resources into a `Catalog` (pure); dev mode feeds it from a
folder of manifests, cluster mode from its watch of the API. `Catalog.resolve` answers the
hot-path question "which frozen configuration serves NAME:QUALIFIER?", drawing a version by
weight for a routing alias: one random number, no locks, at most one hop (alias -> version).
A gateway `serve`s a catalog before taking it: every configuration's `Target` (spec, shape,
revision) is worked out then, once, and `resolve` hands it down with the answer.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from kubelambda.api.common import DEFAULT_REGION, LATEST
from kubelambda.api.function import AsyncConfig, FunctionSpec
from kubelambda.api.resources import Alias, Function, Resource, Version
from kubelambda.serving.errors import LambdaError
from kubelambda.serving.names import FunctionRef, function_arn
from kubelambda.serving.target import Target


@dataclass(frozen=True)
class FunctionVersion:
    """One servable configuration: `$LATEST` or a published version, frozen."""

    namespace: str
    function: str
    version: str  # "$LATEST" or a number
    spec: FunctionSpec
    base_dir: Path | None = None  # where relative code paths start (dev mode)
    code_sha256: str | None = None
    description: str | None = None

    @cached_property
    def revision(self) -> str:
        """Identifies this exact configuration; environments are pooled by it."""
        body = json.dumps(
            [
                self.namespace,
                self.function,
                self.version,
                self.spec.to_manifest(),
                str(self.base_dir),
                self.code_sha256,
            ],
            sort_keys=True,
        )
        return hashlib.sha256(body.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AliasRoute:
    name: str
    function_version: str
    weights: dict[str, float]
    provisioned: int = 0
    description: str | None = None
    async_config: AsyncConfig | None = None

    def choose(self, draw: float) -> str:
        """The version for a uniform draw in [0, 1)."""
        for version, weight in self.weights.items():
            if draw < weight:
                return version
            draw -= weight
        return self.function_version

    def describe(self) -> str:
        primary = 1.0 - sum(self.weights.values())
        parts = [f"{self.function_version}={primary:.0%}"]
        parts += [f"{v}={w:.0%}" for v, w in self.weights.items()]
        return " ".join(parts)


@dataclass
class FunctionEntry:
    namespace: str
    name: str
    latest: FunctionVersion
    versions: dict[str, FunctionVersion] = field(default_factory=dict)
    aliases: dict[str, AliasRoute] = field(default_factory=dict)
    provisioned_versions: dict[str, int] = field(default_factory=dict)

    @property
    def reserved(self) -> int | None:
        return self.latest.spec.reserved_concurrency


@dataclass(frozen=True)
class Resolved:
    """One name resolved: what was invoked, the configuration chosen and how to serve it."""

    entry: FunctionEntry
    version: FunctionVersion
    alias: str | None  # the alias invoked through, if any
    qualifier: str  # as invoked: "$LATEST", a number or an alias name
    target: Target | None = None  # None only from a catalog no gateway has served
    invoked_arn: str = ""  # the ARN the runtime sees as invoked (qualified unless $LATEST)


class Catalog:
    def __init__(self, entries: Iterable[FunctionEntry] = (), problems: list[str] | None = None):
        self.functions: dict[tuple[str, str], FunctionEntry] = {
            (e.namespace, e.name): e for e in entries
        }
        self.problems = problems or []
        self.region = DEFAULT_REGION
        self.targets: dict[str, Target] = {}  # revision -> Target, once served
        self.served_at = time.time()

    def configurations(self) -> Iterator[FunctionVersion]:
        """Every servable configuration: each function's $LATEST and its published versions."""
        for entry in self.functions.values():
            yield entry.latest
            yield from entry.versions.values()

    def serve(
        self,
        target_of: Callable[[FunctionVersion], Target],
        region: str,
        known: Mapping[str, Target] | None = None,
    ) -> Catalog:
        """Work out every configuration's Target now, so that resolving hands it down.

        `known`: the targets of the catalog served before. A pinned one (`Target.pinned`) is
        kept as is; one with a problem or with secret values is worked out again (a ConfigMap
        that could not be read may be readable now, a Secret may have been rotated).
        """
        known = known or {}
        self.region = region
        self.served_at = time.time()
        self.targets = {}
        for version in self.configurations():
            kept = known.get(version.revision)
            fresh = kept if kept is not None and kept.pinned else None
            self.targets[version.revision] = fresh or target_of(version)
        return self

    def namespaces(self) -> set[str]:
        return {ns for ns, _ in self.functions}

    def in_namespace(self, namespace: str) -> list[FunctionEntry]:
        return sorted(
            (e for (ns, _), e in self.functions.items() if ns == namespace), key=lambda e: e.name
        )

    def entry(self, namespace: str, name: str) -> FunctionEntry:
        found = self.functions.get((namespace, name))
        if found is None:
            raise self._not_found(namespace, name)
        return found

    def resolve(self, ref: FunctionRef, draw: float) -> Resolved:
        entry = self.entry(ref.namespace, ref.name)
        qualifier = ref.effective_qualifier
        if qualifier == LATEST:
            return self._resolved(entry, entry.latest, None, qualifier)
        if qualifier.isdigit():
            version = entry.versions.get(qualifier)
            if version is None:
                raise self._not_found(ref.namespace, ref.name, qualifier)
            return self._resolved(entry, version, None, qualifier)
        alias = entry.aliases.get(qualifier)
        if alias is None:
            raise self._not_found(ref.namespace, ref.name, qualifier)
        chosen = alias.choose(draw)
        target = entry.latest if chosen == LATEST else entry.versions.get(chosen)
        if target is None:
            raise LambdaError(
                "ResourceNotFoundException",
                f"Alias {qualifier} points to version {chosen}, which does not exist",
            )
        return self._resolved(entry, target, alias.name, qualifier)

    def _resolved(
        self, entry: FunctionEntry, version: FunctionVersion, alias: str | None, qualifier: str
    ) -> Resolved:
        # The runtime sees the ARN as invoked: qualified, except for an unqualified call.
        arn = function_arn(
            self.region, entry.namespace, entry.name, None if qualifier == LATEST else qualifier
        )
        target = self.targets.get(version.revision)
        return Resolved(entry, version, alias, qualifier, target, arn)

    def _not_found(self, namespace: str, name: str, qualifier: str | None = None) -> LambdaError:
        arn = function_arn(self.region, namespace, name, qualifier)
        return LambdaError("ResourceNotFoundException", f"Function not found: {arn}")


def version_number(version: Version) -> int | None:
    if version.spec.version is not None:
        return version.spec.version
    return version.status.version if version.status else None


def build_catalog(
    resources: Iterable[Resource],
    base_dirs: dict[int, Path] | None = None,
    code_digests: dict[int, str] | None = None,
) -> Catalog:
    """A catalog from validated resources; inconsistencies become `problems`, not exceptions.

    `base_dirs` and `code_digests` are keyed by `id(resource)` (dev mode: where the manifest
    lives and the digest of its code folder).
    """
    base_dirs = base_dirs or {}
    code_digests = code_digests or {}
    items = list(resources)
    problems: list[str] = []
    entries: dict[tuple[str, str], FunctionEntry] = {}

    for res in items:
        if isinstance(res, Function):
            latest = FunctionVersion(
                res.namespace,
                res.name,
                LATEST,
                res.spec,
                base_dirs.get(id(res)),
                code_digests.get(id(res)),
                res.spec.description,
            )
            entries[(res.namespace, res.name)] = FunctionEntry(res.namespace, res.name, latest)

    for res in items:
        if isinstance(res, Version):
            entry = entries.get((res.namespace, res.spec.function_name))
            number = version_number(res)
            if entry is None:
                problems.append(f"Version/{res.name}: function {res.spec.function_name} not found")
                continue
            if number is None or res.spec.function is None:
                problems.append(f"Version/{res.name}: not published yet (no number or snapshot)")
                continue
            key = str(number)
            if key in entry.versions:
                problems.append(f"Version/{res.name}: version {key} is defined twice")
                continue
            entry.versions[key] = FunctionVersion(
                res.namespace,
                entry.name,
                key,
                res.spec.function,
                base_dirs.get(id(res)),
                code_digests.get(id(res)),
                res.spec.description,
            )
            if res.spec.provisioned_concurrency:
                entry.provisioned_versions[key] = res.spec.provisioned_concurrency

    for res in items:
        if isinstance(res, Alias):
            entry = entries.get((res.namespace, res.spec.function_name))
            if entry is None:
                problems.append(f"Alias/{res.name}: function {res.spec.function_name} not found")
                continue
            name = res.alias_name
            targets = [res.spec.function_version, *res.spec.weights()]
            missing = [v for v in targets if v != LATEST and v not in entry.versions]
            if missing:
                problems.append(f"Alias/{res.name}: version(s) {', '.join(missing)} not found")
                continue
            if name in entry.aliases:
                problems.append(f"Alias/{res.name}: alias {name} of {entry.name} is defined twice")
                continue
            entry.aliases[name] = AliasRoute(
                name,
                res.spec.function_version,
                res.spec.weights(),
                res.spec.provisioned_concurrency,
                res.spec.description,
                res.spec.async_config,
            )
    return Catalog(entries.values(), problems)
