"""The dispatch core: resolve, admit, pick an environment, invoke, account.

Every way of invoking goes through `Invoker.invoke`: the sync Invoke API, the async workers
and the event-source pollers, in dev mode and in cluster mode alike. Only the environment
provider behind the pool differs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from kubelambda.gateway.admission import ConcurrencyLedger, Lease, PoolLimits, Throttle
from kubelambda.gateway.catalog import Catalog, FunctionVersion, Resolved
from kubelambda.gateway.errors import LambdaError, throttled
from kubelambda.gateway.logbook import LogBook
from kubelambda.gateway.metrics import GatewayMetrics
from kubelambda.gateway.names import FunctionRef, function_arn
from kubelambda.gateway.pool import EnvironmentPool, InitType, ProvisionedTarget
from kubelambda.gateway.secrets import SecretLookup
from kubelambda.gateway.specs import environment_spec
from kubelambda.runtime.spec import EnvironmentSpec, InvokeRequest, InvokeResult

log = logging.getLogger(__name__)

# How long past a function's own timeout the gateway waits for an environment that stopped
# answering, before it gives up on it.
HANG_GRACE = 10.0


@dataclass
class Invocation:
    payload: bytes
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_context: str | None = None
    cognito_identity: str | None = None
    trace_id: str | None = None
    log_tail: bool = False


@dataclass
class Outcome:
    resolved: Resolved
    result: InvokeResult
    start: str  # cold | warm | provisioned


class Invoker:
    serves_images = False  # packageType Image needs a container engine: cluster mode only

    def __init__(
        self,
        pool: EnvironmentPool,
        *,
        limits: PoolLimits | None = None,
        metrics: GatewayMetrics | None = None,
        region: str = "us-east-1",
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.pool = pool
        self.limits = limits or PoolLimits()
        self.metrics = metrics or GatewayMetrics()
        self.region = region
        self.draw = draw
        self.catalog = Catalog()
        self.ledgers: dict[str, ConcurrencyLedger] = {}
        self.logbook = LogBook()
        # Cluster mode: the agents' lines reach the gateway only as each invocation's log tail.
        self.tail_to_logbook = False
        self.secrets: SecretLookup | None = None  # where environment.secretKeyRefs are read

    def set_catalog(self, catalog: Catalog) -> list[str]:
        """Serve a new set of functions; returns admission problems (reservations that don't fit).

        In-flight invocations finish on the configuration they started with.
        """
        problems: list[str] = []
        ledgers: dict[str, ConcurrencyLedger] = {}
        targets: dict[str, ProvisionedTarget] = {}
        revisions: set[str] = set()
        for namespace in catalog.namespaces():
            ledger = self.ledgers.get(namespace) or ConcurrencyLedger(self.limits)
            reserved: dict[str, int] = {}
            provisioned: dict[tuple[str, str], int] = {}
            for entry in catalog.in_namespace(namespace):
                if entry.reserved is not None:
                    reserved[entry.name] = entry.reserved
                revisions.add(entry.latest.revision)
                revisions.update(v.revision for v in entry.versions.values())
                for alias in entry.aliases.values():
                    if alias.provisioned:
                        provisioned[(entry.name, alias.name)] = alias.provisioned
                        self._add_target(
                            targets, entry.versions.get(alias.function_version), alias.provisioned
                        )
                for number, count in entry.provisioned_versions.items():
                    provisioned[(entry.name, number)] = count
                    self._add_target(targets, entry.versions.get(number), count)
            problems += [f"{namespace}/{p}" for p in ledger.configure(reserved, provisioned)]
            ledgers[namespace] = ledger
        self.catalog = catalog
        self.ledgers = ledgers
        self.pool.set_current(revisions, targets)
        self.pool.use_runtimes(
            {
                v.spec.runtime
                for e in catalog.functions.values()
                for v in (e.latest, *e.versions.values())
                if v.spec.runtime is not None and v.spec.package_type == "Zip"
            }
        )
        return problems

    def _add_target(
        self, targets: dict[str, ProvisionedTarget], version: FunctionVersion | None, count: int
    ) -> None:
        if version is None or version.spec.runtime is None:
            return
        existing = targets.get(version.revision)
        total = count + (existing.count if existing else 0)

        def make_spec(v: FunctionVersion = version) -> EnvironmentSpec:
            return self.spec_for(v, "provisioned-concurrency")

        label = f"{version.namespace}.{version.function}:{version.version}"
        targets[version.revision] = ProvisionedTarget(total, version.spec.runtime, make_spec, label)

    def spec_for(self, version: FunctionVersion, init_type: InitType) -> EnvironmentSpec:
        return environment_spec(
            version, region=self.region, initialization_type=init_type, secrets=self.secrets
        )

    def resolve(self, ref: FunctionRef) -> Resolved:
        return self.catalog.resolve(ref, self.draw())

    def admit(self, resolved: Resolved) -> Lease:
        ledger = self.ledgers[resolved.entry.namespace]
        lease = ledger.acquire(resolved.entry.name, resolved.qualifier)
        if isinstance(lease, Throttle):
            self.metrics.throttles.labels(*self._labels(resolved)).inc()
            raise throttled(lease.reason)
        return lease

    async def invoke(self, resolved: Resolved, call: Invocation) -> Outcome:
        """Admit, run and account one invocation. Raises LambdaError for API-level failures."""
        lease = self.admit(resolved)
        labels = self._labels(resolved)
        version = resolved.version
        concurrent = self.metrics.concurrent.labels(*labels)
        concurrent.inc()
        try:
            if version.spec.runtime is None and not self.serves_images:
                raise LambdaError(
                    "InvalidParameterValueException",
                    f"{version.function}: packageType Image needs cluster mode",
                )
            env, start = await self.pool.acquire(
                version.revision,
                version.spec.runtime or "",
                lambda init_type: self.spec_for(version, init_type),
                provisioned=lease.kind == "provisioned",
            )
            try:
                request = InvokeRequest(
                    request_id=call.request_id,
                    payload=call.payload,
                    client_context=call.client_context,
                    cognito_identity=call.cognito_identity,
                    trace_id=call.trace_id,
                    log_tail=call.log_tail or self.tail_to_logbook,
                    invoked_function_arn=self._invoked_arn(resolved),
                )
                async with asyncio.timeout(version.spec.timeout + HANG_GRACE):
                    result = await env.invoke(request)
            except LambdaError:
                raise
            except Exception as exc:
                log.warning("environment failed during %s: %r", call.request_id, exc)
                await env.stop()
                raise LambdaError(
                    "ServiceException",
                    f"The execution environment failed during the invocation: {exc!r}",
                ) from exc
            finally:
                self.pool.release(env)
        finally:
            concurrent.dec()
            self.ledgers[resolved.entry.namespace].release(lease)
        self._account(labels, result, start)
        if self.tail_to_logbook and result.log_tail:
            self.logbook.add_tail(
                resolved.entry.namespace, resolved.entry.name, version.version, result.log_tail
            )
        return Outcome(resolved, result, start)

    def _account(self, labels: tuple[str, ...], result: InvokeResult, start: str) -> None:
        self.metrics.invocations.labels(*labels).inc()
        if result.function_error:
            self.metrics.errors.labels(*labels).inc()
        self.metrics.duration.labels(*labels, start).observe(result.duration_ms / 1000)
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

    def _invoked_arn(self, resolved: Resolved) -> str:
        qualifier = (
            None
            if resolved.qualifier == "$LATEST" and resolved.alias is None
            else (resolved.qualifier)
        )
        return function_arn(self.region, resolved.entry.namespace, resolved.entry.name, qualifier)
