"""The EventSourceMapping resource: a poller that reads a queue or stream and invokes a function.

Each source type has Lambda's batch limits and the options Lambda allows for its kind of
source (queues: no starting position; streams: a starting position, retries and record age;
schedules: no batching). `SOURCE_LIMITS` holds the table; the validator applies it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from kubelambda.api.common import ApiModel, Condition, HttpUrl, ObjectName
from kubelambda.api.function import Destination

FUNCTION_REF = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(:(\$LATEST|[a-zA-Z0-9_-]+))?$"
MAX_FILTERS = 5
SourceType = Literal["sqs", "kafka", "rabbitmq", "redis", "nats", "schedule"]


@dataclass(frozen=True)
class SourceLimits:
    batch_default: int
    batch_max: int
    window_max: int
    stream: bool  # has a starting position, retries and record age


SOURCE_LIMITS: dict[str, SourceLimits] = {
    "sqs": SourceLimits(batch_default=10, batch_max=10000, window_max=300, stream=False),
    "rabbitmq": SourceLimits(batch_default=100, batch_max=10000, window_max=300, stream=False),
    "kafka": SourceLimits(batch_default=100, batch_max=10000, window_max=300, stream=True),
    "redis": SourceLimits(batch_default=100, batch_max=10000, window_max=300, stream=True),
    "nats": SourceLimits(batch_default=100, batch_max=10000, window_max=300, stream=True),
    "schedule": SourceLimits(batch_default=1, batch_max=1, window_max=0, stream=False),
}

RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
CRON = re.compile(r"^cron\((.+)\)$")


class SqsSource(ApiModel):
    queue_url: HttpUrl
    endpoint: HttpUrl | None = None
    region: str | None = None
    credentials_secret: ObjectName | None = None


class KafkaSource(ApiModel):
    bootstrap_servers: list[Annotated[str, StringConstraints(pattern=r"^[^\s:]+:\d+$")]] = Field(
        min_length=1
    )
    topic: Annotated[str, StringConstraints(min_length=1, max_length=249)]
    consumer_group_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    credentials_secret: ObjectName | None = None


class RabbitMQSource(ApiModel):
    url: Annotated[str, StringConstraints(pattern=r"^amqps?://\S+$")]
    queue: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    virtual_host: str | None = None
    credentials_secret: ObjectName | None = None


class RedisSource(ApiModel):
    url: Annotated[str, StringConstraints(pattern=r"^rediss?://\S+$")]
    stream: Annotated[str, StringConstraints(min_length=1)]
    consumer_group: str | None = None
    credentials_secret: ObjectName | None = None


class NatsSource(ApiModel):
    url: Annotated[str, StringConstraints(pattern=r"^(nats|tls)://\S+$")]
    stream: Annotated[str, StringConstraints(min_length=1, pattern=r"^[^\s.*>]+$")]
    subject: str | None = None
    consumer: str | None = None
    credentials_secret: ObjectName | None = None


class ScheduleSource(ApiModel):
    expression: str = Field(description="rate(N minutes|hours|days) or cron(m h dom mon dow year)")
    input: str | None = Field(default=None, description="The event, as a JSON document.")
    timezone: str | None = None

    @field_validator("expression")
    @classmethod
    def _expression(cls, value: str) -> str:
        check_schedule_expression(value)
        return value

    @field_validator("input")
    @classmethod
    def _input_json(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                json.loads(value)
            except ValueError as exc:
                raise ValueError(f"input must be a JSON document: {exc}") from None
        return value


def check_schedule_expression(value: str) -> None:
    """Accepts EventBridge's rate() and six-field cron() forms, as Lambda schedules do."""
    rate = RATE.match(value)
    if rate:
        if int(rate.group(1)) < 1:
            raise ValueError("rate() needs a positive value")
        return
    cron = CRON.match(value)
    if not cron:
        raise ValueError(
            f"expression {value!r} must be rate(N minutes|hours|days) or cron(m h dom mon dow year)"
        )
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ValueError(f"cron() takes 6 fields (m h dom mon dow year); got {len(fields)}")
    from croniter import croniter

    if not croniter.is_valid(" ".join(f.replace("?", "*") for f in fields[:5])):
        raise ValueError(f"cron expression {cron.group(1)!r} is not valid")


class Source(ApiModel):
    sqs: SqsSource | None = None
    kafka: KafkaSource | None = None
    rabbitmq: RabbitMQSource | None = None
    redis: RedisSource | None = None
    nats: NatsSource | None = None
    schedule: ScheduleSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Source:
        chosen = [name for name in SOURCE_LIMITS if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(
                f"exactly one of {', '.join(SOURCE_LIMITS)} must be set "
                f"(got {', '.join(chosen) or 'none'})"
            )
        return self

    @property
    def type(self) -> str:
        return next(name for name in SOURCE_LIMITS if getattr(self, name) is not None)


class Filter(ApiModel):
    pattern: Annotated[str, StringConstraints(min_length=1, max_length=4096)]

    @field_validator("pattern")
    @classmethod
    def _json_object(cls, value: str) -> str:
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"pattern must be a JSON object: {exc}") from None
        if not isinstance(parsed, dict):
            raise ValueError("pattern must be a JSON object")
        return value


class FilterCriteria(ApiModel):
    filters: list[Filter] = Field(default_factory=list, max_length=MAX_FILTERS)


class DestinationConfig(ApiModel):
    on_failure: Destination | None = None


class ScalingConfig(ApiModel):
    maximum_concurrency: int = Field(ge=2, le=1000)


StartingPosition = Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]


class EventSourceMappingSpec(ApiModel):
    function_name: Annotated[str, StringConstraints(pattern=FUNCTION_REF, max_length=140)] = Field(
        description="NAME or NAME:QUALIFIER (a version number, an alias or $LATEST)."
    )
    source: Source
    batch_size: int | None = Field(default=None, ge=1, le=10000)
    maximum_batching_window_in_seconds: int | None = Field(default=None, ge=0, le=300)
    starting_position: StartingPosition | None = None
    starting_position_timestamp: datetime | None = None
    filter_criteria: FilterCriteria | None = None
    function_response_types: list[Literal["ReportBatchItemFailures"]] = Field(
        default_factory=list, max_length=1
    )
    bisect_batch_on_function_error: bool | None = None
    maximum_retry_attempts: int | None = Field(default=None, ge=-1, le=10000)
    maximum_record_age_in_seconds: int | None = Field(default=None, ge=-1, le=604800)
    destination_config: DestinationConfig | None = None
    scaling_config: ScalingConfig | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _source_rules(self) -> EventSourceMappingSpec:
        kind = self.source.type
        limits = SOURCE_LIMITS[kind]
        if self.batch_size is not None and self.batch_size > limits.batch_max:
            raise ValueError(f"batchSize for {kind} must be between 1 and {limits.batch_max}")
        window = self.maximum_batching_window_in_seconds
        if window is not None and window > limits.window_max:
            raise ValueError(
                f"maximumBatchingWindowInSeconds for {kind} must be between 0 and "
                f"{limits.window_max}"
            )
        if kind == "sqs" and (self.batch_size or 0) > 10 and not window:
            raise ValueError(
                "batchSize over 10 for sqs needs maximumBatchingWindowInSeconds of at least 1"
            )
        if limits.stream and self.starting_position is None:
            raise ValueError(f"startingPosition is required for {kind} (TRIM_HORIZON or LATEST)")
        if not limits.stream:
            for field, value in (
                ("startingPosition", self.starting_position),
                ("bisectBatchOnFunctionError", self.bisect_batch_on_function_error),
                ("maximumRetryAttempts", self.maximum_retry_attempts),
                ("maximumRecordAgeInSeconds", self.maximum_record_age_in_seconds),
            ):
                if value is not None:
                    raise ValueError(f"{field} applies only to stream sources, not {kind}")
        if (self.starting_position == "AT_TIMESTAMP") != (
            self.starting_position_timestamp is not None
        ):
            raise ValueError("startingPositionTimestamp goes with startingPosition AT_TIMESTAMP")
        age = self.maximum_record_age_in_seconds
        if age is not None and age != -1 and age < 60:
            raise ValueError("maximumRecordAgeInSeconds must be -1 (forever) or 60 to 604800")
        if self.scaling_config is not None and kind != "sqs":
            raise ValueError("scalingConfig applies only to sqs sources")
        if kind == "schedule" and (self.filter_criteria or self.function_response_types):
            raise ValueError("filterCriteria and functionResponseTypes do not apply to schedule")
        return self

    def effective_batch_size(self) -> int:
        return self.batch_size or SOURCE_LIMITS[self.source.type].batch_default

    def target(self) -> tuple[str, str | None]:
        """(function name, qualifier or None) from `functionName`."""
        name, _, qualifier = self.function_name.partition(":")
        return name, qualifier or None


ESMState = Literal[
    "Creating", "Enabling", "Enabled", "Disabling", "Disabled", "Updating", "Deleting", "Failed"
]


class EventSourceMappingStatus(ApiModel):
    state: ESMState | None = None
    state_transition_reason: str | None = None
    source_type: str | None = None
    uuid: str | None = None
    last_processing_result: str | None = None
    last_modified: datetime | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
