"""Prometheus metrics mirroring Lambda's CloudWatch set, labelled namespace/function/version/alias.

Each gateway owns a registry (not the process-global one), so several gateways can live in one
test process and `/metrics` shows exactly one gateway's numbers.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LABELS = ("namespace", "function", "version", "alias")
DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
)
INIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# From a warm function's milliseconds to Lambda's longest maximumEventAgeInSeconds (6 h).
EVENT_AGE_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 900, 3600, 21600)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.invocations = Counter(
            "kubelambda_invocations",
            "Invocations, successful or not (Lambda: Invocations)",
            LABELS,
            registry=r,
        )
        self.errors = Counter(
            "kubelambda_errors",
            "Invocations that ended in a function error (Lambda: Errors)",
            LABELS,
            registry=r,
        )
        self.throttles = Counter(
            "kubelambda_throttles",
            "Invocations refused by admission with 429 (Lambda: Throttles)",
            LABELS,
            registry=r,
        )
        self.duration = Histogram(
            "kubelambda_duration_seconds",
            "Function run time per invocation (Lambda: Duration)",
            (*LABELS, "start"),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.init_duration = Histogram(
            "kubelambda_init_duration_seconds",
            "Init phase of cold starts (Lambda: InitDuration)",
            (*LABELS, "start"),
            buckets=INIT_BUCKETS,
            registry=r,
        )
        self.concurrent = Gauge(
            "kubelambda_concurrent_executions",
            "Invocations in flight (Lambda: ConcurrentExecutions)",
            LABELS,
            registry=r,
        )
        # Asynchronous invocation (kubelambda.gateway.asyncq).
        self.async_received = Counter(
            "kubelambda_async_events_received",
            "Event invocations accepted with a 202 and stored (Lambda: AsyncEventsReceived)",
            LABELS,
            registry=r,
        )
        self.async_event_age = Histogram(
            "kubelambda_async_event_age_seconds",
            "From acceptance to each invocation attempt (Lambda: AsyncEventAge)",
            LABELS,
            buckets=EVENT_AGE_BUCKETS,
            registry=r,
        )
        self.async_dropped = Counter(
            "kubelambda_async_events_dropped",
            "Events given up without a successful run: retries exhausted, too old, or "
            "undeliverable (Lambda: AsyncEventsDropped)",
            LABELS,
            registry=r,
        )
        self.destination_failures = Counter(
            "kubelambda_destination_delivery_failures",
            "Invocation records that could not be sent to their destination "
            "(Lambda: DestinationDeliveryFailures)",
            LABELS,
            registry=r,
        )
        self.dead_letter_errors = Counter(
            "kubelambda_dead_letter_errors",
            "Events that could not be sent to the dead-letter target (Lambda: DeadLetterErrors)",
            LABELS,
            registry=r,
        )
