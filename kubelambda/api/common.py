"""Building blocks shared by the four resource models.

`ApiModel` fixes the conventions every model follows: Python attributes in snake_case, manifest
fields in Lambda's camelCase, unknown fields rejected. The constants here (group, name patterns,
and the runtimes of `kubelambda.api.runtimes`) are the ones the CRD generator, the gateway and
the operator all read.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

# The runtimes live in one list; re-exported here for the models and the operator.
from kubelambda.api.runtimes import NODE_RUNTIMES as NODE_RUNTIMES
from kubelambda.api.runtimes import PROVIDED_RUNTIMES as PROVIDED_RUNTIMES
from kubelambda.api.runtimes import PYTHON_RUNTIMES as PYTHON_RUNTIMES
from kubelambda.api.runtimes import RUNTIMES as RUNTIMES
from kubelambda.api.runtimes import Runtime as Runtime

GROUP = "kubelambda.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


def is_digits(text: str) -> bool:
    """Only ASCII 0-9: `str.isdigit` also takes superscripts and other scripts' digits, which
    `int()` refuses or reads as numbers Lambda never would (a Marker of "¹" was a 500)."""
    return text.isascii() and text.isdigit()


DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SHA256_HEX = r"^[0-9a-f]{64}$"
VERSION_NUMBER = r"^[0-9]+$"
LATEST = "$LATEST"
DEFAULT_REGION = "us-east-1"  # in ARNs and AWS_REGION when no --region is given

FunctionName = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS1123_LABEL)]
ObjectName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
]
Sha256 = Annotated[str, StringConstraints(pattern=SHA256_HEX)]
Description = Annotated[str, StringConstraints(max_length=256)]
HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/\S*)?$", max_length=2048)]


class ApiModel(BaseModel):
    """Base of every spec and status model: camelCase in manifests, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
    )

    def to_manifest(self) -> dict[str, Any]:
        """The manifest form: camelCase keys, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ObjectMeta(BaseModel):
    """The parts of Kubernetes ObjectMeta the models read; anything else passes through."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: ObjectName | None = None
    generate_name: str | None = None
    namespace: FunctionName | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A Kubernetes-style condition, as in metav1.Condition."""

    type: str
    status: ConditionStatus
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


def is_version_number(value: str) -> bool:
    return re.fullmatch(VERSION_NUMBER, value) is not None
