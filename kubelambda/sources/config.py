"""From an EventSourceMapping to the settings a poller runs with. Pure.

Everything a reader needs is decided here once: the batch limits (Lambda's defaults per
source), the compiled filters, the stream retry policy and the invoke target. Problems the
CRD schema cannot express (a filter pattern's grammar, a timezone) raise `ConfigError` with
the field's name, for the mapping's status.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from kubelambda.api.esm import SOURCE_LIMITS, EventSourceMappingSpec
from kubelambda.api.resources import EventSourceMapping
from kubelambda.sources.batching import BatchLimits
from kubelambda.sources.filters import FilterError, FilterSet, compile_filters
from kubelambda.sources.schedule import Schedule, ScheduleError, parse_schedule
from kubelambda.sources.streams import StreamPolicy


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class PollerConfig:
    namespace: str
    name: str
    uid: str  # the mapping's UUID (metadata.uid, or a stable digest in dev mode)
    spec: EventSourceMappingSpec
    kind: str
    limits: BatchLimits
    filters: FilterSet
    policy: StreamPolicy
    report_item_failures: bool
    function: str  # NAME, addressed as ns.NAME at the gateway
    qualifier: str | None
    schedule: Schedule | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def invoke_name(self) -> str:
        return f"{self.namespace}.{self.function}"

    @property
    def concurrency(self) -> int:
        """Batches in flight at once (SQS: scalingConfig.maximumConcurrency, else one reader)."""
        scaling = self.spec.scaling_config
        return scaling.maximum_concurrency if scaling is not None else 1

    def fingerprint(self) -> str:
        """Changes whenever the spec does, so a reload restarts exactly the changed pollers."""
        return self.spec.model_dump_json(by_alias=True, exclude_none=True)


def poller_config(mapping: EventSourceMapping, uid: str | None = None) -> PollerConfig:
    spec = mapping.spec
    kind = spec.source.type
    limits_table = SOURCE_LIMITS[kind]
    window = spec.maximum_batching_window_in_seconds or 0  # Lambda's default for these: 0
    patterns = [f.pattern for f in spec.filter_criteria.filters] if spec.filter_criteria else []
    try:
        filters = compile_filters(patterns)
    except FilterError as exc:
        raise ConfigError(str(exc)) from None
    age = spec.maximum_record_age_in_seconds
    policy = StreamPolicy(
        bisect=bool(spec.bisect_batch_on_function_error),
        max_retries=spec.maximum_retry_attempts if spec.maximum_retry_attempts is not None else -1,
        max_age=None if age is None or age == -1 else float(age),
    )
    schedule = None
    source = spec.source.schedule
    if source is not None:
        try:
            schedule = parse_schedule(source.expression, source.timezone)
        except ScheduleError as exc:
            raise ConfigError(f"source.schedule: {exc}") from None
    function, qualifier = spec.target()
    return PollerConfig(
        namespace=mapping.namespace,
        name=mapping.name,
        uid=uid or mapping.metadata.uid or _stable_uid(mapping.namespace, mapping.name),
        spec=spec,
        kind=kind,
        limits=BatchLimits(
            size=min(spec.effective_batch_size(), limits_table.batch_max), window=float(window)
        ),
        filters=filters,
        policy=policy,
        report_item_failures="ReportBatchItemFailures" in spec.function_response_types,
        function=function,
        qualifier=qualifier,
        schedule=schedule,
    )


def _stable_uid(namespace: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kubelambda:esm:{namespace}/{name}"))
