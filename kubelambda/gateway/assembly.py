"""One gateway, however it is fed: the dispatch core, the HTTP surface and the async queue, wired
once for dev mode and cluster mode alike.

A mode supplies three things: an environment provider (local processes, or warm pods claimed
from the operator's pools), a catalog source (a folder of manifests, or the cluster's watch) and
a spec builder (which packages and code sources this gateway can serve). `Gateway` builds the
same parts from them, in the same order, and shuts them down in one order:

1. its own tasks (the catalog source's feed, the reaper, the mode's background work) stop;
2. the async worker stops taking events (in-flight ones get a grace period);
3. the HTTP side stops, so calls in flight finish and a pending 202 is still answered;
4. the async queue closes, then the environments stop (pods are released);
5. the catalog source closes last (cluster mode: its watches and API client).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from aiohttp import web

from kubelambda.addresses import http_url
from kubelambda.gateway.admission import PoolLimits
from kubelambda.gateway.api import GatewayApi, serve
from kubelambda.gateway.asyncq.service import AsyncService, AsyncSettings
from kubelambda.gateway.auth.guard import Guard
from kubelambda.gateway.control_api.routes import ControlRoutes
from kubelambda.gateway.invoker import Invoker
from kubelambda.gateway.pool import EnvironmentPool, PoolSettings
from kubelambda.gateway.provider import EnvironmentProvider
from kubelambda.gateway.urls.front import UrlFront
from kubelambda.loop import cancel_all
from kubelambda.serving.catalog import Catalog
from kubelambda.serving.control.service import ControlService
from kubelambda.serving.logbook import LogBook
from kubelambda.serving.specs import SpecBuilder
from kubelambda.serving.urls import UrlDomain

# Serve a catalog; returns the admission problems it has (reservations that do not fit).
Apply = Callable[[Catalog], list[str]]
Background = Callable[[], Coroutine[Any, Any, None]]


class CatalogSource(Protocol):
    """Where a gateway's catalogs come from; it reports their problems its own way."""

    @property
    def synced(self) -> bool:
        """Whether it has read everything there is to serve (readiness)."""
        ...

    async def open(self, apply: Apply) -> None:
        """Begin. A source that has its first catalog at hand applies it here (dev mode: and
        raises ManifestError when the folder is invalid); a watching one starts watching."""
        ...

    async def run(self, apply: Apply) -> None:
        """Apply every later catalog, until cancelled."""
        ...

    async def close(self) -> None:
        """Release what it holds; called after the environments have stopped."""
        ...


@dataclass(frozen=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 9000
    default_namespace: str = "default"
    limits: PoolLimits = field(default_factory=PoolLimits)
    pool: PoolSettings = field(default_factory=PoolSettings)
    asynq: AsyncSettings | None = None  # None: Event invocations are refused
    # Keep each invocation's log tail in the log buffer (cluster mode: the agents' lines reach
    # the gateway only that way; dev mode writes every line into the buffer itself).
    tail_logs: bool = False
    url_domain: UrlDomain = field(default_factory=UrlDomain)
    url_port_served: bool = False  # URLs carry the port served (dev mode: it may be chosen)


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        *,
        provider: EnvironmentProvider,
        source: CatalogSource,
        specs: SpecBuilder,
        background: Sequence[Background] = (),
        logbook: LogBook | None = None,
        guard: Guard | None = None,
        control: ControlService | None = None,
    ) -> None:
        """Raises ValueError for an unusable async queue URL. `logbook`: the buffer `kubelambda
        logs` reads, when the mode feeds it itself (dev mode); else the gateway has its own.
        `control`: the Lambda control API over the mode's object and code stores (None: the
        read-only calls only)."""
        self.settings = settings
        self.source = source
        self.pool = EnvironmentPool(provider, settings.pool)
        self.invoker = Invoker(
            self.pool,
            limits=settings.limits,
            specs=specs,
            logbook=logbook,
            tail_to_logbook=settings.tail_logs,
        )
        self.asynq = AsyncService(self.invoker, settings.asynq) if settings.asynq else None
        self.guard = guard
        self.urls = UrlFront(self.invoker, settings.url_domain, guard)
        self.api = GatewayApi(
            self.invoker,
            default_namespace=settings.default_namespace,
            ready=self.ready,
            submit=self.asynq.submit if self.asynq else None,
            urls=self.urls,
            guard=guard,
            control=ControlRoutes(control) if control is not None else None,
        )
        self.port = settings.port
        self.catalogs = 0  # catalogs served so far
        self._background = tuple(background)
        self._served = asyncio.Event()
        self._asynq_started = False
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        return http_url(self.settings.host, self.port)

    def add_background(self, work: Background) -> None:
        """More of the mode's background work (before `start`)."""
        self._background = (*self._background, work)

    def ready(self) -> bool:
        shared = self.invoker.shared  # replicas sharing a ledger: once it has an allotment
        return self.source.synced and self.catalogs > 0 and (shared is None or shared.synced)

    def apply(self, catalog: Catalog) -> list[str]:
        problems = self.invoker.set_catalog(catalog)
        self.catalogs += 1
        self._served.set()
        return problems

    async def ready_auth(self) -> None:
        """Read the SigV4 keys a Secret holds now, so a missing Secret fails the start.

        Raises KeysError."""
        keys = self.guard.keys if self.guard is not None else None
        load = getattr(keys, "load", None)
        if load is not None:
            await load()

    async def start(self) -> None:
        """Starts serving. Raises what the source's `open` raises, QueueError when the async
        queue won't open, OSError when the port cannot be bound.

        The queue opens before the port does, so no 202 is ever answered without it, and only
        once a catalog is served, so the events a previous run left meet every function.
        """
        await self.source.open(self.apply)
        self._tasks = [
            asyncio.create_task(self.source.run(self.apply), name="catalog source"),
            asyncio.create_task(self.pool.run_reaper(), name="reaper"),
            *(asyncio.create_task(work()) for work in self._background),
        ]
        if self.asynq is not None:
            await self._served.wait()
            await self.asynq.start()
            self._asynq_started = True
        self._runner, self.port = await serve(
            self.api.app(), self.settings.host, self.settings.port
        )
        if self.settings.url_port_served:
            self.urls.domain = replace(self.urls.domain, port=self.port)

    async def stop(self) -> None:
        """The shutdown order of the module docstring; safe after a failed start."""
        await cancel_all(self._tasks)
        if self.asynq is not None and self._asynq_started:
            await self.asynq.stop_worker()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.asynq is not None and self._asynq_started:
            await self.asynq.close()
        await self.pool.close()
        await self.source.close()
