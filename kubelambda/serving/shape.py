"""The shape an execution environment must have from its start: runtime, resources, placement.

Worked out once per configuration when a catalog is served (`kubelambda.serving.target`), so the
layers below never look the function up again: the cluster provider claims a pod of this shape,
the operator creates pods of it, and dev mode ignores what it cannot honour. Pure.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from kubelambda.api.function import FunctionSpec

IMAGE_ENTRYPOINT = "/lambda-entrypoint.sh"  # the official Lambda base images' ENTRYPOINT


def digest(value: Any) -> str:
    """A short stable digest of a JSON value (shape keys, revisions)."""
    body = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PodShape:
    """What must be fixed when a pod is created: its container, resources and placement."""

    runtime: str
    memory: int  # MB; CPU follows it (1769 MB = 1 vCPU)
    ephemeral_storage: int  # MB of /tmp
    architecture: str = "x86_64"
    role: str | None = None  # ServiceAccount; only then is a token mounted
    placement: tuple[tuple[str, str], ...] = ()  # canonical JSON of each placement field
    image: str = ""  # packageType Image: the function's own image for the runtime container
    entry: tuple[str, ...] = ()  # ... and its entry point (imageConfig entryPoint + command)
    workdir: str = ""  # ... and imageConfig.workingDirectory

    @property
    def key(self) -> str:
        parts: list[object] = [
            self.runtime,
            self.memory,
            self.ephemeral_storage,
            self.architecture,
            self.role,
            list(self.placement),
        ]
        if self.image:  # only then, so Zip shapes keep their keys
            parts += [self.image, list(self.entry), self.workdir]
        return digest(parts)

    def fits_in(self, generic: PodShape) -> bool:
        """Whether a function of this shape may run in a generic pod of that shape."""
        return (
            self.runtime == generic.runtime
            and self.memory <= generic.memory
            and self.ephemeral_storage <= generic.ephemeral_storage
            and self.architecture == generic.architecture
            and self.role is None
            and not self.placement
            and not self.image
        )

    def placement_dict(self) -> dict[str, Any]:
        return {name: json.loads(value) for name, value in self.placement}


def placement_items(placement: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """Canonical, hashable form of a manifest's `placement` (empty fields dropped)."""
    if not placement:
        return ()
    return tuple(
        (name, json.dumps(value, sort_keys=True))
        for name, value in sorted(placement.items())
        if value not in (None, {}, [])
    )


def shape_of(spec: FunctionSpec) -> PodShape:
    """The pod shape a function configuration needs (Zip functions; Image ones have no runtime)."""
    placement = spec.placement.to_manifest() if spec.placement else None
    image, entry, workdir = "", tuple[str, ...](), ""
    if spec.package_type == "Image" and spec.code.image is not None:
        config = spec.image_config
        image = spec.code.image
        workdir = (config and config.working_directory) or ""
        # The base images' ENTRYPOINT unless overridden; the image's own CMD cannot be read
        # without a registry, so the handler comes from imageConfig.command.
        entry = tuple((config and config.entry_point) or [IMAGE_ENTRYPOINT]) + tuple(
            (config and config.command) or []
        )
    return PodShape(
        runtime=spec.runtime or "",
        memory=spec.memory_size,
        ephemeral_storage=spec.ephemeral_storage,
        architecture=spec.architectures[0],
        role=spec.role,
        placement=placement_items(placement),
        image=image,
        entry=entry,
        workdir=workdir,
    )
