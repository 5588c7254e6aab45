"""From watched objects to the dispatch core's `Catalog` (cluster mode). Pure.

Only what the operator has accepted is served: Functions, Versions and Aliases whose
`status.state` is Active. An object that no longer validates is skipped and reported, never
fatal. The Function's `status.codeSha256` is passed as the code digest, so a revision (and the
environments pooled under it) changes whenever the operator sees new code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubelambda.api.resources import ManifestError, Resource, parse_resource
from kubelambda.serving.catalog import Catalog, build_catalog

SERVED_STATE = "Active"


def _manifest(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k in ("apiVersion", "kind", "metadata", "spec")}


def catalog_from_objects(
    functions: Iterable[dict[str, Any]],
    versions: Iterable[dict[str, Any]],
    aliases: Iterable[dict[str, Any]],
) -> Catalog:
    """A catalog of the Active objects; `catalog.problems` lists what was left out and why."""
    resources: list[Resource] = []
    digests: dict[int, str] = {}
    problems: list[str] = []
    for kind, objects in (("Function", functions), ("Version", versions), ("Alias", aliases)):
        for obj in objects:
            status = obj.get("status") or {}
            if status.get("state") != SERVED_STATE:
                continue
            meta = obj.get("metadata", {})
            try:
                resource = parse_resource({"kind": kind, **_manifest(obj)})
            except ManifestError as exc:
                problems.append(f"{meta.get('namespace')}/{kind}/{meta.get('name')}: {exc}")
                continue
            resources.append(resource)
            sha = status.get("codeSha256")
            if sha:
                digests[id(resource)] = str(sha)
    catalog = build_catalog(resources, code_digests=digests)
    catalog.problems = problems + catalog.problems
    return catalog
