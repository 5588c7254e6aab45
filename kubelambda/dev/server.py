"""`kubelambda dev`: the gateway and its environments on one machine, fed from a folder.

The pieces are the cluster's own: the same `Invoker`, `EnvironmentPool` and `GatewayApi`; only
the control plane (`DevLoader` instead of the operator) and the environment provider (local
processes instead of pods) differ. Manifest and code changes are picked up while serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from kubelambda.api.resources import ManifestError
from kubelambda.dev.loader import DevLoader, LoadResult
from kubelambda.dev.secrets import SecretsFileError, load_secrets_file
from kubelambda.gateway.admission import PoolLimits
from kubelambda.gateway.api import GatewayApi, serve
from kubelambda.gateway.asyncq.backends import default_url
from kubelambda.gateway.asyncq.service import AsyncService, AsyncSettings
from kubelambda.gateway.invoker import Invoker
from kubelambda.gateway.pool import EnvironmentPool, PoolSettings
from kubelambda.runtime.environment import Environment
from kubelambda.runtime.provider import ProcessProvider

log = logging.getLogger(__name__)
Say = Callable[[str], None]


@dataclass
class DevSettings:
    folder: Path
    host: str = "127.0.0.1"
    port: int = 9000
    state_dir: Path | None = None
    namespace: str = "default"
    region: str = "us-east-1"
    limits: PoolLimits = field(default_factory=PoolLimits)
    pool: PoolSettings = field(default_factory=PoolSettings)
    reload: bool = True
    queue: str | None = None  # the async queue's URL; default: SQLite in the state folder
    retry_base: float = 60.0  # first async retry after a function error (Lambda: ~1 min)
    async_concurrency: int = 16  # async events in flight
    event_age_cap: float | None = None  # caps maximumEventAgeInSeconds (testing)
    nats_url: str = "nats://127.0.0.1:4222"  # NATS destinations, when the queue is not NATS
    secrets: Path | None = None  # --secrets FILE: values of environment.secretKeyRefs

    @property
    def state(self) -> Path:
        return (self.state_dir or self.folder / ".kubelambda").resolve()

    def async_settings(self) -> AsyncSettings:
        return AsyncSettings(
            queue_url=self.queue or default_url(self.state),
            concurrency=self.async_concurrency,
            retry_base=self.retry_base,
            age_cap=self.event_age_cap,
            nats_url=self.nats_url,
        )


def ready_hint(url: str, region: str, names: list[str]) -> str:
    """A command that works as printed on a fresh machine: no region, no credentials needed."""
    name = names[0] if names else "NAME"
    return (
        f"aws lambda invoke --endpoint-url {url} --region {region} --no-sign-request "
        f"--function-name {name} out.json && cat out.json"
    )


class DevServer:
    def __init__(self, settings: DevSettings, say: Say = print) -> None:
        self.settings = settings
        self.say = say
        settings.state.mkdir(parents=True, exist_ok=True)
        self.loader = DevLoader(settings.folder, settings.state)
        self.provider = ProcessProvider(
            settings.state / "environments", environment_sink=self._function_line
        )
        self.pool = EnvironmentPool(self.provider, settings.pool)
        self.invoker = Invoker(self.pool, limits=settings.limits, region=settings.region)
        self.api = GatewayApi(self.invoker, default_namespace=settings.namespace)
        self.asynq = AsyncService(self.invoker, settings.async_settings())
        self.api.async_submit = self.asynq.submit
        self._asynq_started = False
        self._told: set[str] = set()  # notes said once, not on every reload
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port = settings.port
        self.reloads = 0

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    async def start(self) -> None:
        """Loads the folder and starts serving.

        Raises ManifestError on an invalid folder, QueueError when the async queue won't open.
        The queue opens before the port does, so no 202 is ever answered without it; its worker
        resumes the events a previous run left (a restart loses none).
        """
        self._read_secrets()
        result = self.loader.load()
        self._apply(result)
        await self.asynq.start()
        self._asynq_started = True
        self._runner, self.port = await serve(
            self.api.app(), self.settings.host, self.settings.port
        )
        self._tasks.append(asyncio.create_task(self.pool.run_reaper()))
        if self.settings.reload:
            self._tasks.append(asyncio.create_task(self._watch()))
        self._announce(result)

    def _function_line(self, env: Environment, line: str) -> None:
        """A line an environment wrote: buffered for `kubelambda logs`, printed with its
        function and version (a multi-line record's carriage returns as indented lines)."""
        spec = env.spec
        if spec is None:
            self.say(f"[{env.runtime} warm] {line}")
            return
        self.invoker.logbook.add(spec.namespace, spec.function_name, spec.function_version, line)
        name = spec.function_name
        if spec.namespace != self.settings.namespace:
            name = f"{spec.namespace}.{name}"
        self.say(f"[{name}:{spec.function_version}] {line.replace(chr(13), chr(10) + '    ')}")

    def _apply(self, result: LoadResult) -> None:
        problems = result.problems + self.invoker.set_catalog(result.catalog)
        for mapping in result.mappings:
            note = (
                f"EventSourceMapping {mapping.name}: event-source pollers are not built yet; "
                "not polled in dev mode"
            )
            if note not in self._told:
                self._told.add(note)
                problems.append(note)
        for line in problems:
            self.say(f"  ! {line}")
        for line in result.warnings:
            if line not in self._told:
                self._told.add(line)
                self.say(f"  note: {line}")

    def _announce(self, result: LoadResult) -> None:
        catalog = result.catalog
        count = len(catalog.functions)
        self.say(f"kubelambda dev: serving {count} function(s) from {self.settings.folder}")
        shown_names: list[str] = []
        for (namespace, name), entry in sorted(catalog.functions.items()):
            shown = name if namespace == self.settings.namespace else f"{namespace}.{name}"
            shown_names.append(shown)
            invoke = f"{self.url}/2015-03-31/functions/{shown}/invocations"
            qualifiers = ["$LATEST", *sorted(entry.versions, key=int)]
            qualifiers += [f"{a} ({entry.aliases[a].describe()})" for a in sorted(entry.aliases)]
            self.say(f"  {shown:<24} {invoke}")
            self.say(f"  {'':<24} qualifiers: {', '.join(qualifiers)}")
        self.say(f"async queue: {self.asynq.queue.describe()}")
        self.say(f"ready: {ready_hint(self.url, self.settings.region, shown_names)}")

    def _read_secrets(self) -> None:
        """(Re)read --secrets FILE; raises SecretsFileError when it cannot be used."""
        if self.settings.secrets is None:
            return
        found = load_secrets_file(self.settings.secrets, self.settings.namespace)
        self.loader.secrets = found
        self.invoker.secrets = found.lookup

    async def reload(self) -> bool:
        """Re-reads the folder; on invalid manifests keeps serving what it served."""
        try:
            self._read_secrets()
            result = await asyncio.to_thread(self.loader.load)
        except (ManifestError, SecretsFileError) as exc:
            self.say("reload refused, still serving the previous manifests:")
            lines = exc.problems if isinstance(exc, ManifestError) else [str(exc)]
            for line in lines:
                self.say(f"  ! {line}")
            return False
        self._apply(result)
        self.reloads += 1
        self.say(f"reloaded: {len(result.catalog.functions)} function(s)")
        return True

    async def _watch(self) -> None:
        from watchfiles import awatch

        state = self.settings.state.resolve()

        def relevant(_change: object, path: str) -> bool:
            p = Path(path)
            return state not in p.parents and "__pycache__" not in p.parts

        async for _changes in awatch(self.settings.folder, watch_filter=relevant, debounce=200):
            await self.reload()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Stop taking async events first, so none starts while the HTTP side drains; close the
        # queue last, so a request still in flight gets its 202 (or a clean 500).
        if self._asynq_started:
            await self.asynq.stop_worker()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._asynq_started:
            await self.asynq.close()
        await self.pool.close()
