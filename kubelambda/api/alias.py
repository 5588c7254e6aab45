"""The Alias resource: a named pointer to a version, optionally splitting traffic with a second.

As in Lambda: the name is case-sensitive and not all digits, at most one additional version,
weights in [0, 1] summing to at most 1, and no routing that involves `$LATEST`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, field_validator, model_validator

from kubelambda.api.common import LATEST, ApiModel, Condition, Description, FunctionName
from kubelambda.api.function import AliasName, AsyncConfig, check_alias_name

FunctionVersion = Annotated[
    str, StringConstraints(min_length=1, max_length=1024, pattern=r"^(\$LATEST|[0-9]+)$")
]
VersionKey = Annotated[str, StringConstraints(pattern=r"^[0-9]+$")]
Weight = Annotated[float, Field(ge=0.0, le=1.0)]


class RoutingConfig(ApiModel):
    additional_version_weights: dict[VersionKey, Weight] = Field(default_factory=dict, max_length=1)

    @model_validator(mode="after")
    def _sum(self) -> RoutingConfig:
        total = sum(self.additional_version_weights.values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"additionalVersionWeights sum to {total:g}; the maximum is 1")
        return self


class AliasSpec(ApiModel):
    function_name: FunctionName
    name: AliasName | None = Field(default=None, description="Defaults to metadata.name.")
    description: Description | None = None
    function_version: FunctionVersion
    routing_config: RoutingConfig | None = None
    provisioned_concurrency: int = Field(default=0, ge=0)
    async_config: AsyncConfig | None = Field(
        default=None, description="Overrides the version's asyncConfig for calls via this alias."
    )

    @field_validator("name")
    @classmethod
    def _not_digits(cls, value: str | None) -> str | None:
        return check_alias_name(value)

    @model_validator(mode="after")
    def _no_latest_routing(self) -> AliasSpec:
        weights = self.routing_config.additional_version_weights if self.routing_config else {}
        if weights and self.function_version == LATEST:
            raise ValueError(
                "routingConfig: an alias that points to $LATEST cannot route to other versions"
            )
        if self.function_version in weights:
            raise ValueError(
                f"routingConfig: version {self.function_version} is already the alias's "
                "functionVersion; additionalVersionWeights must name a different version"
            )
        return self

    def weights(self) -> dict[str, float]:
        return dict(self.routing_config.additional_version_weights) if self.routing_config else {}


class AliasStatus(ApiModel):
    name: str | None = None
    alias_arn: str | None = None
    routing: str | None = Field(default=None, description='For example "1=90% 2=10%".')
    provisioned_concurrency_ready: int | None = None
    state: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
