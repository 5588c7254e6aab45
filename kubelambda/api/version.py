"""The Version resource: an immutable, numbered snapshot of a function's configuration and code.

`spec.version` is assigned by the operator when omitted and never reused; `spec.function` is
filled from the Function's spec when omitted. Once set, these fields never change: the CRD
enforces that with CEL transition rules (see `kubelambda.api.crdgen`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from kubelambda.api.common import ApiModel, Condition, Description, FunctionName, Sha256
from kubelambda.api.function import FunctionSpec

# Fields that may go from unset to set once, and never change after.
SET_ONCE_FIELDS = ("version", "function", "codeSha256")


class VersionSpec(ApiModel):
    function_name: FunctionName
    version: int | None = Field(default=None, ge=1, description="Assigned when omitted.")
    description: Description | None = None
    function: FunctionSpec | None = Field(
        default=None, description="The frozen configuration; the Function's spec when omitted."
    )
    code_sha256: Sha256 | None = Field(
        default=None, description="Publish only if $LATEST's code has this digest."
    )
    provisioned_concurrency: int = Field(default=0, ge=0)


VersionState = Literal["Pending", "Active", "Inactive", "Failed"]


class VersionStatus(ApiModel):
    state: VersionState | None = None
    state_reason: str | None = None
    version: int | None = None
    code_sha256: str | None = None
    code_size: int | None = None
    function_arn: str | None = None
    provisioned_concurrency_ready: int | None = None
    last_modified: datetime | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
