"""What the control API writes to: an object store of resources and a code store of zips.

The control API is a front end to the four resources (plus LayerVersion records): every call
reads, creates, replaces or deletes objects shaped exactly as Kubernetes objects (apiVersion,
kind, metadata with resourceVersion and generation, spec, status). Two backends implement
`ObjectStore`: dev mode's state folder (`kubelambda.dev.objects`) and a cluster's API server
(`kubelambda.kube.objects`, acting as the caller). Code bytes go to a `CodeStore`, keyed by
sha256: a folder in dev mode, an S3-compatible bucket in a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

Obj = dict[str, Any]

# Kinds the object store holds: the four resources, and published layer versions.
FUNCTION = "Function"
VERSION = "Version"
ALIAS = "Alias"
MAPPING = "EventSourceMapping"
LAYER = "LayerVersion"
KINDS = (FUNCTION, VERSION, ALIAS, MAPPING, LAYER)

# Annotations the control API keeps on the objects it writes.
ANNOTATION = "kubelambda.dev/"
TAGS = ANNOTATION + "tags"  # JSON object of the function's tags
ROLE = ANNOTATION + "role"  # the Role ARN given to CreateFunction
LAST_MODIFIED = ANNOTATION + "last-modified"
CODE_SIZE = ANNOTATION + "code-size"
MANIFEST = ANNOTATION + "manifest"  # dev mode: the file an object comes from (read-only)
FUNCTION_LABEL = ANNOTATION + "function"  # on Versions and Aliases: the function's name


class StoreError(Exception):
    """Base of the store's refusals; the service turns each into a Lambda error."""


class AlreadyExists(StoreError):
    pass


class Stale(StoreError):
    """The object changed since it was read (resourceVersion precondition)."""


class Missing(StoreError):
    pass


class ReadOnly(StoreError):
    """The object comes from a manifest file the API does not change."""

    def __init__(self, kind: str, name: str, where: str) -> None:
        super().__init__(
            f"{kind} {name} is defined by the manifest {where}; the API does not change folder "
            "manifests: edit the file instead"
        )


class Denied(StoreError):
    """The cluster refused the caller (RBAC)."""


class Invalid(StoreError):
    """The backend refused the object as invalid (the apiserver's schema or CEL rules)."""


@dataclass(frozen=True)
class Caller:
    """Who makes a call, as authentication names them; the cluster store impersonates them."""

    user: str
    groups: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)


class ObjectStore(Protocol):
    """Objects of one backend, seen as one caller (`None`: the gateway itself)."""

    async def list(self, kind: str, namespace: str) -> list[Obj]: ...

    async def get(self, kind: str, namespace: str, name: str) -> Obj | None: ...

    async def create(self, kind: str, namespace: str, obj: Obj) -> Obj:
        """Raises AlreadyExists, Invalid, Denied."""
        ...

    async def replace(self, kind: str, namespace: str, obj: Obj) -> Obj:
        """`obj.metadata.resourceVersion` is the precondition. Raises Stale, Missing, ReadOnly,
        Invalid, Denied."""
        ...

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        """Raises Missing, ReadOnly, Denied."""
        ...


class ObjectBackend(Protocol):
    def acting_as(self, caller: Caller | None) -> ObjectStore: ...

    async def settled(self) -> None:
        """Returns once what was written so far is being served (dev mode: the folder source
        has reloaded; a cluster: at once, the operator reports through status)."""
        ...


@dataclass(frozen=True)
class StoredCode:
    """A zip in the code store: its digest, size and the `code` fields that reference it."""

    sha256: str  # hex
    size: int
    code: dict[str, Any]  # a Function's spec.code (or a layer's source), sha256 included


class CodeStore(Protocol):
    async def put_file(self, path: Path) -> StoredCode:
        """Stores a zip (streamed from `path`); idempotent by digest."""
        ...

    async def fetch_s3(self, bucket: str, key: str, version: str | None, into: Path) -> None:
        """Downloads an object of the store's S3 endpoint into `into` (CreateFunction's
        S3Bucket/S3Key). Raises StoreError when there is no S3 endpoint or no such object."""
        ...
