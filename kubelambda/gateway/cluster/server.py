"""The gateway in cluster mode: the shared dispatch core fed by the watch layer, pods as provider.

The pieces are dev mode's own (`Invoker`, `EnvironmentPool`, `GatewayApi`); what differs is
where the catalog comes from (`ClusterView` → `catalog_from_objects`, rebuilt when a Function,
Version or Alias changes) and where environments come from (`ClusterProvider`: warm pods the
operator keeps). The pool keeps no generic environments of its own: the operator's warm pools
are the generic environments. `/readyz` answers 200 once every watch has listed its objects.
With `--queue`, Event invocations go to the async subsystem (`kubelambda.gateway.asyncq`), whose
worker starts only after the first catalog is built, so resumed events never meet an empty one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field

from aiohttp import web

from kubelambda.api.common import LATEST
from kubelambda.gateway.admission import PoolLimits
from kubelambda.gateway.api import GatewayApi, serve
from kubelambda.gateway.asyncq.service import AsyncService, AsyncSettings
from kubelambda.gateway.catalog import FunctionVersion
from kubelambda.gateway.cluster.codes import ConfigMapCode
from kubelambda.gateway.cluster.kubeapi import KubeApi
from kubelambda.gateway.cluster.provider import ClaimSettings, ClusterProvider
from kubelambda.gateway.cluster.secrets import ClusterSecrets
from kubelambda.gateway.cluster.sources import catalog_from_objects
from kubelambda.gateway.cluster.view import ClusterView
from kubelambda.gateway.invoker import Invoker
from kubelambda.gateway.pool import EnvironmentPool, InitType, PoolSettings
from kubelambda.gateway.specs import CodeResolver, environment_spec
from kubelambda.operator.contract import PodShape, shape_of
from kubelambda.runtime.spec import EnvironmentSpec

log = logging.getLogger(__name__)


def default_identity() -> str:
    """The gateway's pod name in a cluster (POD_NAME), else host and process id."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()[:40]}-{os.getpid()}"


class ClusterInvoker(Invoker):
    serves_images = True  # a pod runs the function's image as its runtime container

    """The dispatch core, with code from ConfigMaps resolved for the agents."""

    def __init__(
        self, pool: EnvironmentPool, code: CodeResolver, *, limits: PoolLimits, region: str
    ) -> None:
        super().__init__(pool, limits=limits, region=region)
        self.code_resolver = code
        self.tail_to_logbook = True  # `kubelambda logs` against a cluster gateway

    def spec_for(self, version: FunctionVersion, init_type: InitType) -> EnvironmentSpec:
        return environment_spec(
            version,
            region=self.region,
            initialization_type=init_type,
            resolve=self.code_resolver,
            images=True,
            secrets=self.secrets,
        )


@dataclass
class ClusterSettings:
    host: str = "0.0.0.0"
    port: int = 9000
    default_namespace: str = "default"
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    limits: PoolLimits = field(default_factory=PoolLimits)
    keepalive: float = 300.0
    max_age: float = 7200.0
    region: str = "us-east-1"
    identity: str = field(default_factory=default_identity)
    claim_timeout: float = 30.0
    lease: float = 60.0
    queue: str | None = None  # the async queue's URL; None: Event invocations are refused


class ClusterGateway:
    def __init__(self, settings: ClusterSettings, api: KubeApi | None = None) -> None:
        self.settings = settings
        self.api = api or KubeApi.from_environment()
        self.view = ClusterView(self.api, settings.namespaces)
        claim = ClaimSettings(
            identity=settings.identity,
            claim_timeout=settings.claim_timeout,
            lease=settings.lease,
        )
        self.provider = ClusterProvider(self.api, self.view, claim, self._shape_of)
        pool_settings = PoolSettings(
            generic_per_runtime=0,  # the operator's warm pools are the generic environments
            keepalive=settings.keepalive,
            max_age=settings.max_age,
            start_timeout=settings.claim_timeout,
        )
        self.pool = EnvironmentPool(self.provider, pool_settings)
        self.code = ConfigMapCode(self.api)
        self.secrets = ClusterSecrets(self.api)
        self.invoker = ClusterInvoker(
            self.pool, self.code.resolve, limits=settings.limits, region=settings.region
        )
        self.invoker.secrets = self.secrets.lookup
        self.gateway_api = GatewayApi(
            self.invoker, default_namespace=settings.default_namespace, ready=self.ready
        )
        self.asynq: AsyncService | None = None
        if settings.queue:
            self.asynq = AsyncService(self.invoker, AsyncSettings(queue_url=settings.queue))
            self.gateway_api.async_submit = self.asynq.submit
        self.port = settings.port
        self._runner: web.AppRunner | None = None
        self._cataloged = asyncio.Event()
        self._asynq_started = False
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.rebuilds = 0

    def ready(self) -> bool:
        return self.view.synced and self.rebuilds > 0

    def _shape_of(self, spec: EnvironmentSpec) -> PodShape | None:
        entry = self.invoker.catalog.functions.get((spec.namespace, spec.function_name))
        if entry is None:
            return None
        version = (
            entry.latest
            if spec.function_version == LATEST
            else entry.versions.get(spec.function_version)
        )
        return shape_of(version.spec) if version is not None else None

    def _on_change(self, kind: str) -> None:
        if kind != "pods":
            self._dirty.set()

    async def _rebuild_forever(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.02)  # coalesce a burst of watch events into one rebuild
            self._dirty.clear()
            if not self.view.synced:
                continue
            catalog = catalog_from_objects(
                self.view.objects("functions"),
                self.view.objects("versions"),
                self.view.objects("aliases"),
            )
            await self.code.refresh(catalog)  # before any spec is built from the catalog
            await self.secrets.refresh(catalog)
            problems = catalog.problems + self.invoker.set_catalog(catalog)
            self.rebuilds += 1
            self._cataloged.set()
            for line in problems:
                log.warning("catalog: %s", line)
            log.info("serving %d function(s)", len(catalog.functions))

    async def start(self) -> None:
        self.view.subscribe(self._on_change)
        self.view.start()
        self._tasks += [
            asyncio.create_task(self._rebuild_forever()),
            asyncio.create_task(self.pool.run_reaper()),
            asyncio.create_task(self.provider.renew_forever()),
            asyncio.create_task(self.secrets.refresh_forever(lambda: self.invoker.catalog)),
        ]
        if self.asynq is not None:
            await self._cataloged.wait()  # the worker resumes stored events: serve them all
            await self.asynq.start()  # before the port opens: no 202 without a queue
            self._asynq_started = True
        self._runner, self.port = await serve(
            self.gateway_api.app(), self.settings.host, self.settings.port
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.asynq is not None and self._asynq_started:
            await self.asynq.stop_worker()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.asynq is not None and self._asynq_started:
            await self.asynq.close()
        await self.pool.close()  # releases every claimed pod
        await self.view.stop()
        await self.api.close()
