"""The dispatch core: resolve, admit, pick an environment, invoke, account.

Every way of invoking goes through `Invoker.invoke`: the sync Invoke API, the async workers
and the event-source pollers, in dev mode and in cluster mode alike. Only the environment
provider behind the pool differs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from prometheus_client import Counter, Gauge, Histogram

from kubelambda.gateway.admission import ConcurrencyLedger, Lease, PoolLimits, Throttle
from kubelambda.gateway.ledger.allot import Bucket, bucket_of, capacities_of
from kubelambda.gateway.ledger.rate import ScalingRate
from kubelambda.gateway.ledger.sync import SharedLedger
from kubelambda.gateway.metrics import GatewayMetrics
from kubelambda.gateway.pool import EnvironmentPool, ProvisionedTarget, StartKind
from kubelambda.runtime.invocation import InvalidClientContext
from kubelambda.runtime.spec import EnvironmentSpec, InvokeRequest, InvokeResult
from kubelambda.runtime.stream import ResponseStream
from kubelambda.serving.catalog import Catalog, FunctionVersion, Resolved
from kubelambda.serving.errors import (
    ACCOUNT_LIMIT,
    RATE_LIMIT,
    RESERVED_LIMIT,
    RESERVED_RATE_LIMIT,
    LambdaError,
    as_lambda_error,
    throttled,
)
from kubelambda.serving.logbook import LogBook
from kubelambda.serving.names import FunctionRef
from kubelambda.serving.specs import SpecBuilder
from kubelambda.serving.target import InitType, Target

log = logging.getLogger(__name__)

# How long past a function's own timeout the gateway waits for an environment that stopped
# answering, before it gives up on it.
HANG_GRACE = 10.0


@dataclass(frozen=True, slots=True)
class _Series:
    concurrent: Gauge
    invocations: Counter
    errors: Counter
    duration: dict[str, Histogram]


@dataclass
class Outcome:
    resolved: Resolved
    result: InvokeResult
    start: StartKind


class Invoker:
    def __init__(
        self,
        pool: EnvironmentPool,
        *,
        limits: PoolLimits | None = None,
        metrics: GatewayMetrics | None = None,
        specs: SpecBuilder | None = None,
        draw: Callable[[], float] = random.random,
        logbook: LogBook | None = None,
        tail_to_logbook: bool = False,
    ) -> None:
        self.pool = pool
        self.limits = limits or PoolLimits()
        self.metrics = metrics or GatewayMetrics()
        self.specs = specs or SpecBuilder()
        self.draw = draw
        self.catalog = Catalog()
        self.catalog.region = self.specs.region  # 404s before the first catalog name it too
        self.ledgers: dict[str, ConcurrencyLedger] = {}
        # Set when gateway replicas share one ledger (cluster mode, ledger/sync.py).
        self.shared: SharedLedger | None = None
        self.rate = ScalingRate(
            self.limits.scaling_rate, per_namespace=dict(self.limits.scaling_rates)
        )
        # `kubelambda logs` reads this; dev mode's environments write every line into it.
        self.logbook = logbook or LogBook()
        # Cluster mode: the agents' lines reach the gateway only as each invocation's log tail.
        self.tail_to_logbook = tail_to_logbook
        # Each label set's metric children, looked up once (prometheus' labels() locks and
        # validates on every call; this is the warm hot path).
        self._series: dict[tuple[str, ...], _Series] = {}

    @property
    def region(self) -> str:
        return self.specs.region

    def set_catalog(self, catalog: Catalog) -> list[str]:
        """Serve a new set of functions; returns admission problems (reservations that don't fit).

        Every configuration's Target is worked out here, once. In-flight invocations finish on
        the configuration they started with.
        """
        catalog.serve(self.specs.target, self.specs.region, known=self.catalog.targets)
        problems: list[str] = []
        ledgers: dict[str, ConcurrencyLedger] = {}
        targets: dict[str, ProvisionedTarget] = {}
        for namespace in catalog.namespaces():
            ledger = self.ledgers.get(namespace) or ConcurrencyLedger(self.limits)
            reserved: dict[str, int] = {}
            provisioned: dict[tuple[str, str], int] = {}
            for entry in catalog.in_namespace(namespace):
                if entry.reserved is not None:
                    reserved[entry.name] = entry.reserved
                for alias in entry.aliases.values():
                    if alias.provisioned:
                        provisioned[(entry.name, alias.name)] = alias.provisioned
                        self._add_target(
                            targets,
                            catalog,
                            entry.versions.get(alias.function_version),
                            alias.provisioned,
                        )
                for number, count in entry.provisioned_versions.items():
                    provisioned[(entry.name, number)] = count
                    self._add_target(targets, catalog, entry.versions.get(number), count)
            problems += [f"{namespace}/{p}" for p in ledger.configure(reserved, provisioned)]
            for entry in catalog.in_namespace(namespace):
                for version in (entry.latest, *entry.versions.values()):
                    problem = catalog.targets[version.revision].problem
                    if problem is not None:
                        problems.append(
                            f"{namespace}/{entry.name}:{version.version}: not served: "
                            f"{problem.message}"
                        )
            ledgers[namespace] = ledger
        self.catalog = catalog
        self.ledgers = ledgers
        self.pool.set_current(set(catalog.targets), targets)
        self.pool.use_runtimes(
            {
                v.spec.runtime
                for v in catalog.configurations()
                if v.spec.runtime is not None and v.spec.package_type == "Zip"
            }
        )
        return problems

    @staticmethod
    def _add_target(
        targets: dict[str, ProvisionedTarget],
        catalog: Catalog,
        version: FunctionVersion | None,
        count: int,
    ) -> None:
        if version is None:
            return
        target = catalog.targets[version.revision]
        if target.problem is not None:
            return  # not servable here (the builder's rules): its invocations say why
        existing = targets.get(version.revision)
        total = count + (existing.count if existing else 0)
        targets[version.revision] = ProvisionedTarget(total, target)

    def reservation(self, namespace: str, function: str) -> int | None:
        """The reservation admission has in force for a function (None: none, or it did not
        fit and the function runs unreserved)."""
        ledger = self.ledgers.get(namespace)
        return ledger.reservation(function) if ledger is not None else None

    def refused_reservation(self, namespace: str, function: str) -> int | None:
        """The reservation a function asks for that admission refused (it did not fit)."""
        ledger = self.ledgers.get(namespace)
        return ledger.refused.get(function) if ledger is not None else None

    def spec_for(self, version: FunctionVersion, init_type: InitType) -> EnvironmentSpec:
        """The spec this gateway specializes `version` with (the operator provisions the same)."""
        return self.specs.spec(version, init_type)

    def resolve(self, ref: FunctionRef) -> Resolved:
        return self.catalog.resolve(ref, self.draw())

    def capacities(self) -> dict[str, dict[Bucket, int]]:
        """What the shared ledger divides between replicas, per namespace."""
        return {ns: capacities_of(ledger.in_force()) for ns, ledger in self.ledgers.items()}

    def admit(self, resolved: Resolved) -> Lease:
        """This replica's ledger, then its allotment of the shared one (if any), then the
        scaling rate for a call no warm environment will serve; else 429 with Lambda's reason."""
        ledger = self.ledgers[resolved.entry.namespace]
        lease = ledger.acquire(resolved.entry.name, resolved.qualifier)
        if isinstance(lease, Lease) and self.shared is not None:
            lease = self._share(ledger, resolved.entry.namespace, lease)
        if isinstance(lease, Lease) and lease.kind != "provisioned":
            target = resolved.target
            if (
                target is not None
                and not self.pool.idle(target.revision)
                and not self.rate.allow(resolved.entry.namespace, lease.function, time.monotonic())
            ):
                self._release(resolved.entry.namespace, lease)
                lease = Throttle(RESERVED_RATE_LIMIT if lease.kind == "reserved" else RATE_LIMIT)
        if isinstance(lease, Throttle):
            self.metrics.throttles.labels(*self._labels(resolved)).inc()
            raise throttled(lease.reason)
        return lease

    def _share(self, ledger: ConcurrencyLedger, namespace: str, lease: Lease) -> Lease | Throttle:
        """Count `lease` against this replica's allotment; a provisioned call it has no
        allotment for spills to standard capacity, as Lambda's do."""
        assert self.shared is not None
        if self.shared.take(namespace, bucket_of(lease.kind, lease.function, lease.qualifier)):
            return lease
        ledger.release(lease)
        if lease.kind == "provisioned":
            spill = ledger.acquire(lease.function)
            if isinstance(spill, Throttle):
                return spill
            if self.shared.take(namespace, bucket_of(spill.kind, spill.function, None)):
                return spill
            ledger.release(spill)
            lease = spill
        return Throttle(RESERVED_LIMIT if lease.kind == "reserved" else ACCOUNT_LIMIT)

    def _release(self, namespace: str, lease: Lease) -> None:
        self.ledgers[namespace].release(lease)
        if self.shared is not None:
            self.shared.put(namespace, bucket_of(lease.kind, lease.function, lease.qualifier))

    async def invoke(
        self, resolved: Resolved, request: InvokeRequest, stream: ResponseStream | None = None
    ) -> Outcome:
        """Admit, run and account one invocation. Raises LambdaError for API-level failures.

        With `stream`, a response the function streams reaches it while the function runs.
        """
        lease = self.admit(resolved)
        labels = self._labels(resolved)
        target = self._target(resolved)
        series = self._series.get(labels) or self._new_series(labels)
        concurrent = series.concurrent
        concurrent.inc()
        try:
            if target.problem is not None:
                raise target.error()
            env, start = await self.pool.acquire(target, provisioned=lease.kind == "provisioned")
            if self.tail_to_logbook and not request.log_tail:
                request = replace(request, log_tail=True)
            try:
                async with asyncio.timeout(resolved.version.spec.timeout + HANG_GRACE):
                    result = await env.invoke(request, stream)
            except LambdaError:
                raise
            except InvalidClientContext as exc:
                # The caller's mistake, found by the agent: the environment is unharmed.
                raise as_lambda_error(exc) from exc
            except Exception as exc:
                log.warning("environment failed during %s: %r", request.request_id, exc)
                await env.stop()
                raise LambdaError(
                    "ServiceException",
                    f"The execution environment failed during the invocation: {exc!r}",
                ) from exc
            finally:
                self.pool.release(env)
        finally:
            concurrent.dec()
            self._release(resolved.entry.namespace, lease)
        # Counted in the loop turn after this one, once the caller has sent its answer.
        asyncio.get_running_loop().call_soon(self._account, series, labels, result, start)
        if self.tail_to_logbook and result.log_tail:
            self.logbook.add_tail(
                resolved.entry.namespace,
                resolved.entry.name,
                resolved.version.version,
                result.log_tail,
            )
        return Outcome(resolved, result, start)

    @staticmethod
    def _target(resolved: Resolved) -> Target:
        if resolved.target is None:
            raise LambdaError("ServiceException", "resolved from a catalog no gateway serves")
        return resolved.target

    def _new_series(self, labels: tuple[str, ...]) -> _Series:
        m = self.metrics
        series = _Series(
            m.concurrent.labels(*labels),
            m.invocations.labels(*labels),
            m.errors.labels(*labels),
            {},  # per start kind, made on first use (no empty series in /metrics)
        )
        self._series[labels] = series
        return series

    def _account(
        self, series: _Series, labels: tuple[str, ...], result: InvokeResult, start: StartKind
    ) -> None:
        series.invocations.inc()
        if result.function_error:
            series.errors.inc()
        duration = series.duration.get(start)
        if duration is None:
            duration = series.duration[start] = self.metrics.duration.labels(*labels, start)
        duration.observe(result.duration_ms / 1000)
        if result.init_duration_ms is not None:
            self.metrics.init_duration.labels(*labels, start).observe(
                result.init_duration_ms / 1000
            )

    def _labels(self, resolved: Resolved) -> tuple[str, str, str, str]:
        return (
            resolved.entry.namespace,
            resolved.entry.name,
            resolved.version.version,
            resolved.alias or "",
        )
