"""The data the gateway and an agent exchange: what to specialize with, one invocation, its result.

`EnvironmentSpec` is everything an environment needs to become one function version; the gateway
builds it from the resource models and, in cluster mode, POSTs it to the agent as camelCase JSON.
`InvokeRequest` and `InvokeResult` carry one invocation across the agent boundary.
"""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from kubelambda.api.common import DEFAULT_REGION, LATEST


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class S3Ref(_Model):
    """An object of an S3-compatible endpoint; no keys: the agent's default credentials."""

    bucket: str
    key: str
    endpoint: str | None = None
    region: str | None = None
    version_id: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.key}" + (f" at {self.endpoint}" if self.endpoint else "")


class CodeOrigin(_Model):
    """Where embedded code was read from, so a pod can mount it instead of carrying it."""

    config_map: str  # the ConfigMap, in the function's namespace
    key: str | None = None  # a zip under this key; None: one file per key


class CodeRef(_Model):
    """Where code (or a layer) comes from: exactly one source, optionally pinned by sha256 (hex).

    For a zip (a `.zip` path, a URL, `zip_base64`) the digest is the zip's sha256. For inline files
    and folders it is `kubelambda.runtime.archive.tree_digest` of the files. `origin` is not a
    source: it names the ConfigMap embedded bytes came from (see operator/podbuilder.py).
    A relative `path` is relative to the spec file it was read from (`EnvironmentSpec.anchored`).
    """

    inline: dict[str, str] | None = None
    path: str | None = None
    url: str | None = None
    zip_base64: str | None = None
    image: str | None = None  # a container image (cluster mode: the runtime container runs it)
    s3: S3Ref | None = None  # a zip in an S3-compatible bucket (the code store)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    origin: CodeOrigin | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CodeRef:
        chosen = [
            name
            for name in ("inline", "path", "url", "zip_base64", "image", "s3")
            if getattr(self, name) is not None
        ]
        if len(chosen) != 1:
            got = ", ".join(chosen) or "none"
            raise ValueError(
                f"exactly one of inline, path, url, zipBase64, image, s3 must be set (got {got})"
            )
        if self.s3 is not None and self.sha256 is None:
            raise ValueError("sha256 is required with s3, so the download can be verified")
        if self.url is not None:
            if not self.url.startswith(("http://", "https://")):
                raise ValueError(f"code url {self.url!r} must be http(s)")
            if self.sha256 is None:
                raise ValueError("sha256 is required with url, so the download can be verified")
        return self

    def describe(self) -> str:
        """A short human description for error messages and logs."""
        if self.inline is not None:
            return f"inline code ({len(self.inline)} files)"
        if self.path is not None:
            return f"path {self.path}"
        if self.url is not None:
            return f"url {self.url}"
        if self.image is not None:
            return f"image {self.image}"
        if self.s3 is not None:
            return self.s3.describe()
        return "zipBase64 code"


class EnvironmentSpec(_Model):
    """One function version's configuration, as an execution environment needs it."""

    namespace: str = "default"
    function_name: str
    function_version: str = LATEST
    function_arn: str
    runtime: str
    package_type: Literal["Zip", "Image"] = "Zip"
    handler: str | None = None
    memory_size: int = Field(default=128, ge=1)
    timeout: float = Field(default=3.0, gt=0)
    ephemeral_storage: int = Field(default=512, ge=1)
    environment: dict[str, str] = Field(default_factory=dict)
    code: CodeRef
    layers: list[CodeRef] = Field(default_factory=list)
    region: str = DEFAULT_REGION
    log_format: Literal["Text", "JSON"] = "Text"
    # loggingConfig's levels: AWS_LAMBDA_LOG_LEVEL for the runtime, and the platform lines' filter.
    application_log_level: str | None = None
    system_log_level: Literal["DEBUG", "INFO", "WARN"] | None = None
    initialization_type: Literal["on-demand", "provisioned-concurrency"] = "on-demand"
    image_command: list[str] | None = None
    # Values of environment.secretKeyRefs. Never in a dump, a repr or a revision digest (so never
    # in a pod annotation or a log); only `wire_json` carries them, over the agent channel.
    secrets: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)

    def anchored(self, folder: Path) -> EnvironmentSpec:
        """The spec with relative code and layer paths made absolute under `folder` (a spec
        file's folder: a provisioned pod mounts its ConfigMap code beside its spec)."""

        def anchor(ref: CodeRef) -> CodeRef:
            if ref.path is None or Path(ref.path).is_absolute():
                return ref
            return ref.model_copy(update={"path": str(folder / ref.path)})

        return self.model_copy(
            update={"code": anchor(self.code), "layers": [anchor(ref) for ref in self.layers]}
        )

    def wire_json(self) -> str:
        """The spec as the gateway POSTs it to an agent: camelCase, with the secret values."""
        body = self.model_dump(mode="json", by_alias=True)
        if self.secrets:
            body["secrets"] = dict(self.secrets)
        return json.dumps(body)


# The two per-call records are plain dataclasses: both are built from values the gateway or
# the agent already checked, and pydantic's validation was a measurable share of a warm call.
@dataclass(slots=True, kw_only=True)
class InvokeRequest:
    """One invocation, from the caller (the Invoke API, an async worker) to the environment."""

    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    payload: bytes = b""
    client_context: str | None = None  # base64 JSON, as in X-Amz-Client-Context
    cognito_identity: str | None = None  # JSON, passed to the runtime as is
    trace_id: str | None = None
    log_tail: bool = False
    invoked_function_arn: str


@dataclass(slots=True, kw_only=True)
class InvokeResult:
    """What an invocation produced, with the figures of its REPORT line."""

    request_id: str
    payload: bytes
    function_error: str | None = None  # "Unhandled", as Lambda's X-Amz-Function-Error
    duration_ms: float
    billed_duration_ms: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    log_tail: str | None = None
    executed_version: str
    streamed: bool = False  # the payload went to the caller's ResponseStream as it came


class EnvState(enum.StrEnum):
    """The lifecycle of one execution environment, as the gateway sees it."""

    STARTING = "starting"
    WARM = "warm"  # generic: a runtime process waits in its shim, no code yet
    INITIALIZING = "initializing"  # code released, init running (or re-init after a reset)
    READY = "ready"  # specialized and idle
    BUSY = "busy"
    FAILED = "failed"
    STOPPED = "stopped"
