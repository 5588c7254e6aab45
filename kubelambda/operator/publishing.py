"""`autoPublishAlias`: a changed `$LATEST` publishes a Version and moves the alias to it. Pure.

The Function's handler creates one Version per generation, named after it (so a handler that
runs again creates nothing new), labelled with the alias and owned by the Function; when the
Version handler has published it (its number known), the alias is created or moved to it,
never back to an older number.
"""

from __future__ import annotations

import re
from typing import Any

from kubelambda.api.common import GROUP, VERSION, is_digits

AUTO_ALIAS = "kubelambda.dev/auto-publish-alias"  # label of an auto-published Version


def owner_reference(function: dict[str, Any]) -> dict[str, Any]:
    meta = function["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Function",
        "name": meta["name"],
        "uid": meta.get("uid"),
        "blockOwnerDeletion": False,
    }


def object_name(*parts: str) -> str:
    """A DNS-subdomain name from alias and function names (which allow `_` and capitals)."""
    name = "-".join(parts).lower()
    return re.sub(r"[^a-z0-9.-]+", "-", name).strip("-.")[:253]


def auto_version(function: dict[str, Any], code_sha256: str) -> dict[str, Any] | None:
    """The Version to publish for this generation of `function`, or None (no autoPublishAlias)."""
    spec = function.get("spec") or {}
    alias = spec.get("autoPublishAlias")
    if not alias:
        return None
    meta = function["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Version",
        "metadata": {
            "name": object_name(meta["name"], "auto", f"g{meta.get('generation', 1)}"),
            "namespace": meta["namespace"],
            "labels": {AUTO_ALIAS: object_name(alias)},
            "annotations": {AUTO_ALIAS: alias},
            "ownerReferences": [owner_reference(function)],
        },
        # Publish only the code this generation was reconciled with.
        "spec": {"functionName": meta["name"], "codeSha256": code_sha256},
    }


def alias_for(
    version: dict[str, Any], number: int, function: dict[str, Any] | None
) -> tuple[str, dict[str, Any]] | None:
    """(metadata.name, manifest) of the alias an auto-published Version moves, or None."""
    meta = version["metadata"]
    alias = (meta.get("annotations") or {}).get(AUTO_ALIAS)
    if not alias:
        return None
    fn = (version.get("spec") or {}).get("functionName", "")
    name = object_name(fn, alias)
    manifest: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Alias",
        "metadata": {"name": name, "namespace": meta["namespace"]},
        "spec": {"functionName": fn, "name": alias, "functionVersion": str(number)},
    }
    if function is not None:
        manifest["metadata"]["ownerReferences"] = [owner_reference(function)]
    return name, manifest


def moves_forward(alias: dict[str, Any], number: int) -> bool:
    """Whether an existing alias should point at `number` (never back to an older version)."""
    current = str((alias.get("spec") or {}).get("functionVersion", ""))
    return not is_digits(current) or int(current) < number
