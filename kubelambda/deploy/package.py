"""Packaging: a `code.path` folder (or .zip) becomes one zip with a stable digest, and a manifest
gets `code.s3` + `sha256` in place of `code.path`. Pure but for reading the files.

The zip is deterministic (sorted names, a fixed timestamp, Unix modes kept), so packaging an
unchanged folder twice gives the same sha256 and nothing is uploaded or rolled out again.
"""

from __future__ import annotations

import copy
import io
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Package:
    source: Path
    path: Path  # the zip to upload (the source itself when it already is one)
    files: int


def zip_folder(folder: Path, into: Path) -> int:
    """Writes a deterministic zip of `folder` (skipping __pycache__); returns the file count."""
    count = 0
    with zipfile.ZipFile(into, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), EPOCH)
            mode = stat.S_IMODE(os.stat(path).st_mode) | stat.S_IFREG
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
            count += 1
    return count


def zip_inline(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, EPOCH)
            executable = files[name].startswith("#!")
            info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
            archive.writestr(info, files[name])
    return buffer.getvalue()


def package(source: Path, scratch: Path) -> Package:
    """A folder or a .zip as the zip to upload; raises ValueError when it is neither."""
    if source.is_dir():
        into = scratch / f"{abs(hash(str(source)))}.zip"
        return Package(source, into, zip_folder(source, into))
    if source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            return Package(source, source, len(archive.namelist()))
    raise ValueError(f"{source} is neither a folder nor a .zip")


def code_paths(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(where in the manifest, the path) of every `path` source it holds: a Function's code
    and layers, and those of a Version's snapshot."""
    spec = doc.get("spec") or {}
    bodies = {"Function": ("spec", spec), "Version": ("spec.function", spec.get("function"))}
    where, body = bodies.get(str(doc.get("kind")), ("", None))
    if not body:
        return []
    found: list[tuple[str, str]] = []
    if (body.get("code") or {}).get("path"):
        found.append((f"{where}.code", body["code"]["path"]))
    for index, layer in enumerate(body.get("layers") or []):
        if layer.get("path"):
            found.append((f"{where}.layers[{index}]", layer["path"]))
    return found


def _at(doc: dict[str, Any], where: str) -> dict[str, Any]:
    node: Any = doc
    for part in where.split("."):
        name, _, index = part.partition("[")
        node = node[name]
        if index:
            node = node[int(index.rstrip("]"))]
    found: dict[str, Any] = node
    return found


def with_code(doc: dict[str, Any], replacements: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The manifest with each `code.path` at `where` replaced by the code-store reference."""
    out = copy.deepcopy(doc)
    for where, code in replacements.items():
        node = _at(out, where)
        name = node.get("name")
        node.clear()
        if name is not None:
            node["name"] = name
        node.update(copy.deepcopy(code))
    return out
