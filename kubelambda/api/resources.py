"""The four resources as whole objects, and turning manifests into them.

`parse_resource` validates one manifest document and raises `ManifestError`, whose lines name the
file, the document, the object and the field, and state the allowed range (see
`kubelambda.api.errors`). Reading whole files and folders is `kubelambda.api.manifests`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kubelambda.api.alias import AliasSpec, AliasStatus
from kubelambda.api.common import API_VERSION, ObjectMeta
from kubelambda.api.errors import describe_errors
from kubelambda.api.esm import EventSourceMappingSpec, EventSourceMappingStatus
from kubelambda.api.function import FunctionSpec, FunctionStatus, check_alias_name
from kubelambda.api.version import VersionSpec, VersionStatus


class Resource(BaseModel):
    """Fields every kubelambda object has."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    kind_name: ClassVar[str]
    plural: ClassVar[str]

    api_version: Literal["kubelambda.dev/v1alpha1"] = Field(
        default="kubelambda.dev/v1alpha1", alias="apiVersion"
    )
    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"


def _envelope(kind: str) -> ConfigDict:
    return ConfigDict(populate_by_name=True, extra="forbid", title=kind)


class Function(Resource):
    """A function: its $LATEST code and configuration."""

    model_config = _envelope("Function")
    kind_name = "Function"
    plural = "functions"
    kind: Literal["Function"] = "Function"
    spec: FunctionSpec
    status: FunctionStatus | None = None


class Version(Resource):
    """An immutable, numbered snapshot of a function."""

    model_config = _envelope("Version")
    kind_name = "Version"
    plural = "versions"
    kind: Literal["Version"] = "Version"
    spec: VersionSpec
    status: VersionStatus | None = None


class Alias(Resource):
    """A named pointer to one version, optionally weighted with a second."""

    model_config = _envelope("Alias")
    kind_name = "Alias"
    plural = "aliases"
    kind: Literal["Alias"] = "Alias"
    spec: AliasSpec
    status: AliasStatus | None = None

    @model_validator(mode="after")
    def _effective_name(self) -> Alias:
        check_alias_name(self.alias_name)
        return self

    @property
    def alias_name(self) -> str:
        """The Lambda alias name: spec.name, or metadata.name when unset."""
        return self.spec.name or self.name


class EventSourceMapping(Resource):
    """Reads a queue, stream or schedule and invokes a function with batches."""

    model_config = _envelope("EventSourceMapping")
    kind_name = "EventSourceMapping"
    plural = "eventsourcemappings"
    kind: Literal["EventSourceMapping"] = "EventSourceMapping"
    spec: EventSourceMappingSpec
    status: EventSourceMappingStatus | None = None


KINDS: dict[str, type[Resource]] = {
    cls.kind_name: cls for cls in (Function, Version, Alias, EventSourceMapping)
}


class ManifestError(ValueError):
    """One or more manifests are invalid; each line says where and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _label(doc: dict[str, Any]) -> str:
    kind = doc.get("kind", "?")
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"{kind}/{name or '?'}"


def parse_resource(doc: Any, *, where: str = "") -> Resource:
    """Validates one manifest document into its typed resource."""
    prefix = f"{where}: " if where else ""
    if not isinstance(doc, dict):
        raise ManifestError([f"{prefix}a manifest must be a mapping, not {type(doc).__name__}"])
    kind = doc.get("kind")
    if doc.get("apiVersion") != API_VERSION:
        raise ManifestError(
            [
                f"{prefix}{_label(doc)}: apiVersion must be {API_VERSION}, "
                f"got {doc.get('apiVersion')!r}"
            ]
        )
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ManifestError([f"{prefix}kind must be one of {', '.join(KINDS)}, got {kind!r}"])
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        label = f"{prefix}{_label(doc)}"
        raise ManifestError([f"{label}: {line}" for line in describe_errors(exc, model)]) from None


def yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """A YAML error naming the file, the line and the column (not PyYAML's "<unicode string>")."""
    mark = getattr(exc, "problem_mark", None)
    place = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    parts = (getattr(exc, "context", None), getattr(exc, "problem", None))
    what = " ".join(str(part) for part in parts if part)
    return f"{path}: {place}not valid YAML: {what or exc}"


def iter_documents(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, document) for each YAML document in a file, skipping empty ones."""
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except yaml.YAMLError as exc:
        raise ManifestError([yaml_problem(path, exc)]) from None
    for index, doc in enumerate(docs):
        if doc is not None:
            yield (f"{path}: document {index + 1}" if len(docs) > 1 else str(path)), doc


def is_kubelambda_manifest(doc: Any) -> bool:
    return isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith("kubelambda.dev/")
