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
