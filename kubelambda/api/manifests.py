"""Reading manifest files: every document of every file, with where it came from.

`read_paths` reads files and folders (recursively) and never stops at the first problem: each
invalid document, each YAML error (with the file, line and column) and each file that holds no
kubelambda object is reported, and every valid document is returned as a `Document` that knows
its file, its index in the file and its kind/name, so later messages can name them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubelambda.api.resources import (
    ManifestError,
    Resource,
    is_kubelambda_manifest,
    parse_resource,
    yaml_problem,
)


@dataclass(frozen=True, eq=False)
class Document:
    """One valid kubelambda object and where it is written."""

    path: Path
    index: int | None  # 0-based position in a multi-document file; None when it is alone
    resource: Resource

    @property
    def where(self) -> str:
        return document_label(self.path, self.index)

    @property
    def label(self) -> str:
        return f"{self.resource.kind_name}/{self.resource.name}"

    def line(self, message: str) -> str:
        """A problem with this document: file, document, kind/name, then `field: what`."""
        return f"{self.where}: {self.label}: {message}"


@dataclass
class Reading:
    documents: list[Document] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # invalid documents and files
    notes: list[str] = field(default_factory=list)  # files with no kubelambda object

    def raise_problems(self) -> None:
        if self.problems:
            raise ManifestError(self.problems)


def document_label(path: Path, index: int | None) -> str:
    return str(path) if index is None else f"{path}: document {index + 1}"


STATE_FOLDER = ".kubelambda"  # dev mode's state inside a served folder: never manifests


def yaml_files(folder: Path) -> list[Path]:
    """The YAML files under `folder`, skipping the state folder: runtimes' folders come and go
    in it while a reload walks (a folder gone mid-walk raised FileNotFoundError)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):  # a folder that vanishes is skipped, not raised
        dirs[:] = [d for d in dirs if d != STATE_FOLDER]
        found += [Path(root, f) for f in files if f.endswith((".yaml", ".yml"))]
    return sorted(p for p in found if p.is_file())


def _other_kind(doc: Any) -> str:
    if not isinstance(doc, dict):
        return type(doc).__name__
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"{doc.get('kind', '?')}/{name or '?'} ({doc.get('apiVersion', 'no apiVersion')})"


def read_file(path: Path, reading: Reading) -> None:
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except yaml.YAMLError as exc:
        reading.problems.append(yaml_problem(path, exc))
        return
    except (OSError, UnicodeDecodeError) as exc:
        reading.problems.append(f"{path}: cannot be read: {exc}")
        return
    present = [(i, doc) for i, doc in enumerate(docs) if doc is not None]
    multi = len(docs) > 1
    others: list[str] = []
    for index, doc in present:
        if not is_kubelambda_manifest(doc):
            others.append(_other_kind(doc))
            continue
        where = document_label(path, index if multi else None)
        try:
            resource = parse_resource(doc, where=where)
        except ManifestError as exc:
            reading.problems.extend(exc.problems)
            continue
        reading.documents.append(Document(path, index if multi else None, resource))
    if not any(is_kubelambda_manifest(doc) for _, doc in present):
        found = ", ".join(others) if others else "no documents"
        reading.notes.append(f"{path}: no kubelambda.dev objects in this file (found: {found})")


def read_paths(paths: Iterable[Path]) -> Reading:
    """Every document of the files, and of the YAML files under the folders, in a stable order."""
    reading = Reading()
    for path in paths:
        if path.is_dir():
            for file in yaml_files(path):
                read_file(file, reading)
        elif path.is_file():
            read_file(path, reading)
        else:
            reading.problems.append(f"{path}: no such file or folder")
    return reading
