"""Prometheus metrics of the pollers, labelled by mapping (namespace/name) and function.

In dev mode they join the gateway's registry, so one `/metrics` shows both; the cluster's
`kubelambda poller` serves its own registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

LABELS = ("namespace", "mapping", "function", "source")


class SourceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.polled = Counter(
            "kubelambda_esm_records_polled",
            "Records read from the source, filtered ones included.",
            LABELS,
            registry=r,
        )
        self.filtered = Counter(
            "kubelambda_esm_records_filtered",
            "Records that no filter matched: acknowledged (queues) or skipped (streams).",
            LABELS,
            registry=r,
        )
        self.batches = Counter(
            "kubelambda_esm_batches_invoked",
            "Batches sent to the function, by outcome (success, partial, failure).",
            (*LABELS, "outcome"),
            registry=r,
        )
        self.delivered = Counter(
            "kubelambda_esm_records_delivered",
            "Records the function processed (a success, or not reported as failed).",
            LABELS,
            registry=r,
        )
        self.failed = Counter(
            "kubelambda_esm_records_failed",
            "Records whose invoke failed (queues: released for redelivery; streams: retried).",
            LABELS,
            registry=r,
        )
        self.given_up = Counter(
            "kubelambda_esm_records_given_up",
            "Stream records given up after retries or age, sent to onFailure when set.",
            (*LABELS, "condition"),
            registry=r,
        )
        self.iterator_age = Gauge(
            "kubelambda_esm_iterator_age_seconds",
            "Age of the last record of the last batch sent (streams), as Lambda's IteratorAge.",
            LABELS,
            registry=r,
        )
        self.running = Gauge(
            "kubelambda_esm_pollers_running",
            "1 while this process polls the mapping.",
            LABELS,
            registry=r,
        )
