"""The Function resource: a function's `$LATEST` configuration and code, and its status.

Ranges and defaults follow Lambda's documented quotas; field names are Lambda's API names in
camelCase. Cross-field rules (exactly one code source, Image vs Zip) are model validators whose
messages name the fields involved.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from kubelambda.api.common import (
    PROVIDED_RUNTIMES,
    ApiModel,
    Condition,
    Description,
    FunctionName,
    HttpUrl,
    ObjectName,
    Runtime,
    Sha256,
    is_digits,
)

ENV_NAME = r"^[a-zA-Z]([a-zA-Z0-9_])+$"
ENVIRONMENT_LIMIT_BYTES = 4096
MAX_LAYERS = 5
# Lambda sets these itself; a function may not override them.
RESERVED_ENV = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)

AliasName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_-]+$"),
    # Kubernetes' regex engine has no lookahead, so "not all digits" is a separate rule.
    Field(json_schema_extra={"not": {"pattern": r"^[0-9]+$"}}),
]


def check_alias_name(value: str | None) -> str | None:
    if value is not None and is_digits(value):
        raise ValueError(f"alias name {value!r} must not be all digits (digits name versions)")
    return value


class ConfigMapSource(ApiModel):
    name: ObjectName
    key: str | None = Field(default=None, description="A zip; when unset, one file per key.")


class S3Source(ApiModel):
    bucket: Annotated[str, StringConstraints(min_length=3, max_length=63)]
    key: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    endpoint: HttpUrl | None = None
    region: str | None = None
    version_id: str | None = None
    credentials_secret: ObjectName | None = None


InlineFiles = Annotated[dict[str, str], Field(min_length=1)]

_SOURCES = ("inline", "config_map", "url", "s3", "image", "path")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class _CodeSources(ApiModel):
    inline: InlineFiles | None = None
    config_map: ConfigMapSource | None = None
    url: HttpUrl | None = None
    s3: S3Source | None = None
    path: Annotated[str, StringConstraints(min_length=1)] | None = Field(
        default=None, description="A folder or .zip beside the manifest (dev mode)."
    )
    sha256: Sha256 | None = None

    def source_kind(self) -> str:
        """The manifest name of the one source that is set."""
        return next(_camel(s) for s in _SOURCES if getattr(self, s, None) is not None)

    def _check_one_source(self, allowed: tuple[str, ...]) -> None:
        chosen = [s for s in allowed if getattr(self, s, None) is not None]
        names = ", ".join(_camel(s) for s in allowed)
        if len(chosen) != 1:
            got = ", ".join(_camel(s) for s in chosen) or "none"
            raise ValueError(f"exactly one of {names} must be set (got {got})")
        if self.url is not None and self.sha256 is None:
            raise ValueError("sha256 is required with url, so the download can be verified")
        if self.inline is not None:
            for name in self.inline:
                if not name or name.startswith("/") or ".." in name.split("/"):
                    raise ValueError(f"inline file name {name!r} must be a relative path")


class Code(_CodeSources):
    """Where a function's code comes from: exactly one source, optionally pinned by sha256."""

    image: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Code:
        self._check_one_source(_SOURCES)
        return self


class Layer(_CodeSources):
    """A layer, extracted to /opt in list order; the same sources as code, except an image."""

    name: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Layer:
        self._check_one_source(tuple(s for s in _SOURCES if s != "image"))
        return self


class SecretKeyRef(ApiModel):
    name: ObjectName
    key: Annotated[str, StringConstraints(min_length=1, max_length=253)]


def check_env_names(names: list[str]) -> None:
    """Refuse (never drop) invalid and reserved names, all of them in one message."""
    bad = [n for n in names if not re.fullmatch(ENV_NAME, n)]
    reserved = [n for n in names if n in RESERVED_ENV]
    why = []
    if bad:
        why.append(
            f"{', '.join(bad)}: a name must match {ENV_NAME} (a letter, then letters, digits or _)"
        )
    if reserved:
        why.append(
            f"{', '.join(reserved)}: reserved, Lambda sets it (reserved: "
            f"{', '.join(sorted(RESERVED_ENV))})"
        )
    if why:
        raise ValueError("; ".join(why))


class Environment(ApiModel):
    variables: dict[str, str] = Field(default_factory=dict)
    secret_key_refs: dict[str, SecretKeyRef] = Field(
        default_factory=dict, description="Variables read from Secrets when an environment starts."
    )

    @field_validator("variables", "secret_key_refs")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_env_names(list(value))
        return value

    @model_validator(mode="after")
    def _names_and_size(self) -> Environment:
        both = sorted(set(self.variables) & set(self.secret_key_refs))
        if both:
            raise ValueError(f"{', '.join(both)}: set both in variables and secretKeyRefs")
        size = sum(len(k.encode()) + len(v.encode()) for k, v in self.variables.items())
        size += sum(len(k.encode()) for k in self.secret_key_refs)
        if size > ENVIRONMENT_LIMIT_BYTES:
            raise ValueError(
                f"variables total {size} bytes; the limit is {ENVIRONMENT_LIMIT_BYTES} bytes (4 KB)"
            )
        return self


class Destination(ApiModel):
    """Where an async invocation record (or a DLQ message) goes: exactly one target."""

    function: FunctionName | None = Field(default=None, description="Invoked asynchronously.")
    url: HttpUrl | None = Field(default=None, description="An http(s) webhook, POSTed JSON.")
    sqs: HttpUrl | None = Field(default=None, description="An SQS queue URL.")
    nats: Annotated[str, StringConstraints(min_length=1, pattern=r"^[^\s]+$")] | None = Field(
        default=None, description="A NATS subject."
    )

    @model_validator(mode="after")
    def _one_target(self) -> Destination:
        chosen = [n for n in ("function", "url", "sqs", "nats") if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "exactly one of function, url, sqs, nats must be set "
                f"(got {', '.join(chosen) or 'none'})"
            )
        return self


class Destinations(ApiModel):
    on_success: Destination | None = None
    on_failure: Destination | None = None


class AsyncConfig(ApiModel):
    maximum_retry_attempts: int = Field(default=2, ge=0, le=2)
    maximum_event_age_in_seconds: int = Field(default=21600, ge=60, le=21600)
    destinations: Destinations | None = None


Architecture = Literal["x86_64", "arm64"]
LogLevel = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]


class LoggingConfig(ApiModel):
    log_format: Literal["Text", "JSON"] = "Text"
    application_log_level: LogLevel | None = None
    system_log_level: Literal["DEBUG", "INFO", "WARN"] | None = None
    log_group: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None

    @model_validator(mode="after")
    def _levels_need_json(self) -> LoggingConfig:
        if self.log_format != "JSON" and (self.application_log_level or self.system_log_level):
            raise ValueError("applicationLogLevel and systemLogLevel require logFormat JSON")
        return self


class Cors(ApiModel):
    allow_credentials: bool | None = None
    allow_headers: list[str] = Field(default_factory=list, max_length=100)
    allow_methods: list[str] = Field(default_factory=list, max_length=6)
    allow_origins: list[str] = Field(default_factory=list, max_length=100)
    expose_headers: list[str] = Field(default_factory=list, max_length=100)
    max_age: int | None = Field(default=None, ge=0, le=86400)


class FunctionUrlConfig(ApiModel):
    auth_type: Literal["NONE", "AWS_IAM"] = "AWS_IAM"
    invoke_mode: Literal["BUFFERED", "RESPONSE_STREAM"] = "BUFFERED"
    cors: Cors | None = None
    qualifier: AliasName | None = Field(
        default=None,
        description="An alias the URL invokes (default: the unqualified function, $LATEST).",
    )

    @field_validator("qualifier")
    @classmethod
    def _alias_not_digits(cls, value: str | None) -> str | None:
        return check_alias_name(value)


class ImageConfig(ApiModel):
    command: list[str] | None = Field(default=None, max_length=1500)
    entry_point: list[str] | None = Field(default=None, max_length=1500)
    working_directory: str | None = None


class Toleration(ApiModel):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class Placement(ApiModel):
    """Pod placement overrides for the function's execution environments."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    affinity: dict[str, Any] | None = Field(
        default=None, description="A Kubernetes Affinity, passed to the pod as it is."
    )
    priority_class_name: ObjectName | None = None
    runtime_class_name: ObjectName | None = None


class FunctionSpec(ApiModel):
    """A function's configuration; a Version freezes a copy of it."""

    description: Description | None = None
    runtime: Runtime | None = None
    handler: Annotated[str, StringConstraints(max_length=128, pattern=r"^[^\s]+$")] | None = None
    package_type: Literal["Zip", "Image"] = "Zip"
    code: Code
    image_config: ImageConfig | None = None
    memory_size: int = Field(default=128, ge=128, le=10240, description="MB")
    timeout: int = Field(default=3, ge=1, le=900, description="seconds")
    ephemeral_storage: int = Field(default=512, ge=512, le=10240, description="MB of /tmp")
    environment: Environment | None = None
    layers: list[Layer] = Field(default_factory=list, max_length=MAX_LAYERS)
    architectures: list[Architecture] = Field(
        default_factory=lambda: list[Architecture](["x86_64"]), min_length=1, max_length=1
    )
    role: ObjectName | None = Field(default=None, description="The ServiceAccount to run as.")
    reserved_concurrency: int | None = Field(default=None, ge=0)
    async_config: AsyncConfig | None = None
    dead_letter_config: Destination | None = None
    logging_config: LoggingConfig | None = None
    function_url: FunctionUrlConfig | None = None
    placement: Placement | None = None
    auto_publish_alias: AliasName | None = Field(
        default=None, description="Publish a Version on every change and point this alias at it."
    )

    @field_validator("auto_publish_alias")
    @classmethod
    def _alias_not_digits(cls, value: str | None) -> str | None:
        return check_alias_name(value)

    @model_validator(mode="after")
    def _package_rules(self) -> FunctionSpec:
        if self.package_type == "Image":
            if self.code.image is None:
                raise ValueError("packageType Image requires code.image")
            if self.layers:
                raise ValueError("layers are not supported with packageType Image")
        else:
            if self.code.image is not None:
                raise ValueError("code.image requires packageType Image")
            if self.runtime is None:
                raise ValueError("runtime is required with packageType Zip")
            if self.handler is None and self.runtime not in PROVIDED_RUNTIMES:
                raise ValueError(f"handler is required for runtime {self.runtime}")
            if self.image_config is not None:
                raise ValueError("imageConfig applies only to packageType Image")
        return self

    def effective_async_config(self) -> AsyncConfig:
        return self.async_config or AsyncConfig()


FunctionState = Literal["Pending", "Active", "Inactive", "Failed"]
LastUpdateStatus = Literal["Successful", "Failed", "InProgress"]


class FunctionStatus(ApiModel):
    state: FunctionState | None = None
    state_reason: str | None = None
    state_reason_code: str | None = None
    last_update_status: LastUpdateStatus | None = None
    last_update_status_reason: str | None = None
    code_sha256: str | None = None
    code_size: int | None = None
    latest_version: int | None = Field(default=None, description="The last published number.")
    url: str | None = None
    last_modified: datetime | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
