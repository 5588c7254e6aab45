"""Which asyncConfig and which destination apply to an event: Lambda's scoping, as pure logic.

As with PutFunctionEventInvokeConfig per qualifier: an event invoked through an alias that has
its own asyncConfig uses the alias's; otherwise the configuration of the version that serves it
(`$LATEST` is the Function's spec, a published version its frozen copy). The dead-letter target
is function configuration, so it always comes from the version. `age_cap` shortens every
maximum event age (a testing knob; the resource model keeps Lambda's 60 s minimum).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubelambda.api.function import AsyncConfig, Destination
from kubelambda.gateway.asyncq.policy import Condition, Limits
from kubelambda.serving.catalog import Resolved


@dataclass(frozen=True)
class EventConfig:
    limits: Limits
    on_success: Destination | None
    on_failure: Destination | None
    dead_letter: Destination | None

    def destination(self, condition: Condition) -> Destination | None:
        return self.on_success if condition == "Success" else self.on_failure


def async_config(resolved: Resolved) -> AsyncConfig:
    if resolved.alias is not None:
        route = resolved.entry.aliases.get(resolved.alias)
        if route is not None and route.async_config is not None:
            return route.async_config
    return resolved.version.spec.effective_async_config()


def event_config(resolved: Resolved, age_cap: float | None = None) -> EventConfig:
    config = async_config(resolved)
    max_age = float(config.maximum_event_age_in_seconds)
    if age_cap is not None:
        max_age = min(max_age, age_cap)
    destinations = config.destinations
    return EventConfig(
        limits=Limits(config.maximum_retry_attempts, max_age),
        on_success=destinations.on_success if destinations else None,
        on_failure=destinations.on_failure if destinations else None,
        dead_letter=resolved.version.spec.dead_letter_config,
    )
