"""Dev mode's gateway: the shared gateway assembly fed from a folder, environments as processes.

`FolderSource` is dev mode's catalog source: it loads the folder at start (an invalid folder
stops the start with ManifestError) and, unless told not to, reloads it when files change; a new
catalog swaps in atomically and stale environments drain. It also reads `--secrets FILE` again on
each load, and is the secret lookup of the gateway's spec builder. Everything else is the
gateway's own (`kubelambda.gateway.assembly`), exactly as in cluster mode. Each line an
environment writes is printed with its function and version, and kept in the gateway's log
buffer for `kubelambda logs`. The folder's EventSourceMappings are polled in-process
(`kubelambda.sources.runner.PollerSet`), through this gateway's own Invoke API as in a cluster,
and restarted with every reload that changes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubelambda.api.common import DEFAULT_REGION, LATEST
from kubelambda.api.resources import ManifestError
from kubelambda.dev.loader import DevLoader, LoadResult
from kubelambda.dev.objects import DevObjects
from kubelambda.dev.secrets import SecretsFile, SecretsFileError, load_secrets_file
from kubelambda.gateway.admission import PoolLimits
from kubelambda.gateway.assembly import Apply, Gateway, GatewaySettings
from kubelambda.gateway.asyncq.backends import default_url
from kubelambda.gateway.asyncq.service import AsyncService, AsyncSettings
from kubelambda.gateway.auth.setup import build_guard
from kubelambda.gateway.local import LocalEnvironments
from kubelambda.gateway.pool import PoolSettings
from kubelambda.kube.client import KubeApi
from kubelambda.runtime.environment import Environment
from kubelambda.runtime.placement import CpuPlacement
from kubelambda.runtime.provider import ProcessProvider
from kubelambda.runtime.s3 import S3Endpoint
from kubelambda.serving.codestore import FolderCodeStore
from kubelambda.serving.control.base import ControlSettings
from kubelambda.serving.control.service import ControlService
from kubelambda.serving.logbook import LogBook
from kubelambda.serving.specs import SpecBuilder
from kubelambda.serving.urls import UrlDomain
from kubelambda.sources.config import ConfigError, PollerConfig, poller_config
from kubelambda.sources.credentials import SigV4Key, read_sigv4_key
from kubelambda.sources.invoke import GatewayInvoker
from kubelambda.sources.metrics import SourceMetrics
from kubelambda.sources.runner import PollerSet

Say = Callable[[str], None]
Mappings = Callable[[list[PollerConfig]], Awaitable[None]]


@dataclass
class DevSettings:
    folder: Path
    host: str = "127.0.0.1"
    port: int = 9000
    state_dir: Path | None = None
    namespace: str = "default"
    region: str = DEFAULT_REGION
    limits: PoolLimits = field(default_factory=PoolLimits)
    pool: PoolSettings = field(default_factory=PoolSettings)
    reload: bool = True
    queue: str | None = None  # the async queue's URL; default: SQLite in the state folder
    retry_base: float = 60.0  # first async retry after a function error (Lambda: ~1 min)
    async_concurrency: int = 16  # async events in flight
    event_age_cap: float | None = None  # caps maximumEventAgeInSeconds (testing)
    nats_url: str = "nats://127.0.0.1:4222"  # NATS destinations, when the queue is not NATS
    secrets: Path | None = None  # --secrets FILE: values of environment.secretKeyRefs
    url_domain: UrlDomain = field(default_factory=UrlDomain)
    url_port_served: bool = True  # function URLs carry the port served
    auth: frozenset[str] = frozenset()  # --auth modes; empty: none
    keys: Path | None = None  # --keys FILE (sigv4)
    s3_endpoint: str | None = None  # where CreateFunction's S3Bucket/S3Key are read from
    # Pin the gateway's loop to one CPU, a lone invocation's runtime beside it (`placement.py`);
    # the constructing thread must be the loop's.
    pin_cpus: bool = False

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


def ready_hint(url: str, region: str, names: list[str], signed: bool = False) -> str:
    """A command that works as printed on a fresh machine: no region, no credentials needed
    (`signed`: --auth is on, so the command signs with the caller's configured credentials)."""
    name = names[0] if names else "NAME"
    sign = "" if signed else " --no-sign-request"
    return (
        f"aws lambda invoke --endpoint-url {url} --region {region}{sign} "
        f"--function-name {name} out.json && cat out.json"
    )


class FolderSource:
    """The catalog source of dev mode: a folder of manifests, reloaded when it changes."""

    synced = True  # everything there is to serve is read before the port opens

    def __init__(self, settings: DevSettings, say: Say, objects: DevObjects) -> None:
        self.settings = settings
        self.say = say
        self.objects = objects
        self.loader = DevLoader(settings.folder, settings.state)
        self.loaded: LoadResult | None = None
        self.mappings: list[PollerConfig] = []  # pollable mappings (folder and control API)
        self.on_mappings: Mappings | None = None  # told after every reload
        self.reloads = 0
        self._told: set[str] = set()  # notes said once, not on every reload
        self._lock = asyncio.Lock()  # one load at a time: file changes and API writes

    def secret(self, namespace: str, name: str, key: str) -> str | None:
        """The `SecretLookup` of dev mode's spec builder: the --secrets file as last read."""
        found = self.loader.secrets
        return found.lookup(namespace, name, key) if found is not None else None

    def _read_secrets(self) -> None:
        """(Re)read --secrets FILE; raises SecretsFileError when it cannot be used."""
        if self.settings.secrets is not None:
            found: SecretsFile = load_secrets_file(self.settings.secrets, self.settings.namespace)
            self.loader.secrets = found

    def _load(self) -> LoadResult:
        api_problems: list[str] = []
        result = self.loader.load(self.objects.resources(api_problems))
        result.problems += api_problems
        return result

    async def open(self, apply: Apply) -> None:
        async with self._lock:
            self._read_secrets()  # SecretsFileError: the --secrets file cannot be used
            self._apply(self._load(), apply)  # ManifestError: the folder is invalid

    def _apply(self, result: LoadResult, apply: Apply) -> None:
        self.objects.set_folder(result.found)
        problems = result.problems + apply(result.catalog)
        self.objects.observe(result.catalog)
        self.mappings = []
        for mapping in result.mappings:
            try:
                self.mappings.append(poller_config(mapping))
            except ConfigError as exc:
                note = f"EventSourceMapping {mapping.name}: {exc}; not polled"
                if note not in self._told:  # said once, not on every reload
                    self._told.add(note)
                    problems.append(note)
        for line in problems:
            self.say(f"  ! {line}")
        for line in result.warnings:
            if line not in self._told:
                self._told.add(line)
                self.say(f"  note: {line}")
        self.loaded = result

    async def reload(self, apply: Apply) -> bool:
        """Re-reads the folder; on invalid manifests keeps serving what it served."""
        async with self._lock:
            previous = self.loader.secrets
            try:
                self._read_secrets()
                result = await asyncio.to_thread(self._load)
            except (ManifestError, SecretsFileError) as exc:
                self.loader.secrets = previous  # what is still served was checked against these
                self.say("reload refused, still serving the previous manifests:")
                lines = exc.problems if isinstance(exc, ManifestError) else [str(exc)]
                for line in lines:
                    self.say(f"  ! {line}")
                return False
            self._apply(result, apply)
        if self.on_mappings is not None:
            await self.on_mappings(self.mappings)
        self.reloads += 1
        self.say(f"reloaded: {len(result.catalog.functions)} function(s)")
        return True

    async def run(self, apply: Apply) -> None:
        if not self.settings.reload:
            return
        from watchfiles import awatch

        state = self.settings.state.resolve()

        def relevant(_change: object, path: str) -> bool:
            p = Path(path)
            return state not in p.parents and "__pycache__" not in p.parts

        async for _changes in awatch(self.settings.folder, watch_filter=relevant, debounce=200):
            await self.reload(apply)

    async def close(self) -> None:
        """Nothing held: the processes belong to the provider."""


class DevServer:
    def __init__(
        self, settings: DevSettings, say: Say = print, function_lines: Say | None = None
    ) -> None:
        """Raises ValueError for an unusable --queue URL, KeysError for unusable --keys.

        `say` writes kubelambda's own lines; `function_lines` the lines functions write (by
        default `say` too; `kubelambda dev` batches them, see `terminal.py`)."""
        self.settings = settings
        self.say = say
        self.function_lines = function_lines or say
        guard = build_guard(
            settings.auth,
            region=settings.region,
            default_namespace=settings.namespace,
            cluster=False,
            api=KubeApi.from_environment,
            keys_file=settings.keys,
        )
        settings.state.mkdir(parents=True, exist_ok=True)
        self.objects = DevObjects(settings.state / "api" / "objects", reload=self.reload_quietly)
        self.source = FolderSource(settings, say, self.objects)
        fetch = S3Endpoint(settings.s3_endpoint, settings.region) if settings.s3_endpoint else None
        self.control = ControlService(
            self.objects,
            FolderCodeStore(settings.state / "api" / "code", fetch),
            ControlSettings(
                region=settings.region,
                default_namespace=settings.namespace,
                concurrency_total=settings.limits.total,
                unreserved_floor=settings.limits.unreserved_floor,
                function_url=self.function_url,
                refused_reservation=self.refused_reservation,
            ),
        )
        self.logbook = LogBook()
        # END and REPORT are written after each answer is sent, off the call's path.
        processes = ProcessProvider(
            settings.state / "environments",
            environment_sink=self._function_line,
            defer_closing=True,
            placement=CpuPlacement.pin_this_thread() if settings.pin_cpus else None,
        )
        self.gateway = Gateway(
            GatewaySettings(
                host=settings.host,
                port=settings.port,
                default_namespace=settings.namespace,
                limits=settings.limits,
                pool=settings.pool,
                asynq=settings.async_settings(),
                url_domain=settings.url_domain,
                url_port_served=settings.url_port_served,
            ),
            provider=LocalEnvironments(processes),
            source=self.source,
            # No container engine: no Image packages. Secret values come from --secrets FILE.
            specs=SpecBuilder(
                region=settings.region,
                secrets=self.source.secret if settings.secrets is not None else None,
            ),
            logbook=self.logbook,
            guard=guard,
            control=self.control,
        )
        self.pollers: PollerSet | None = None  # started once the port is known

    @property
    def asynq(self) -> AsyncService:
        assert self.gateway.asynq is not None, "dev mode always has an async queue"
        return self.gateway.asynq

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def port(self) -> int:
        return self.gateway.port

    async def start(self) -> None:
        """Loads the folder and starts serving.

        Raises ManifestError on an invalid folder, QueueError when the async queue won't open.
        The queue opens before the port does, so no 202 is ever answered without it; its worker
        resumes the events a previous run left (a restart loses none). `ready:` is said once
        the generic warm pool is full.
        """
        await self.gateway.start()
        # `ready:` means warm: the generic minimum of every runtime in use is up, so the first
        # call specializes one (a few ms) instead of starting a runtime (a bounded wait).
        try:
            async with asyncio.timeout(self.settings.pool.start_timeout):
                await self.gateway.pool.wait_warm()
        except TimeoutError:
            self.say("note: the generic warm pool is still filling; early calls may start cold")
        # Pollers invoke through this gateway's own Invoke API, as they do in a cluster.
        self.pollers = PollerSet(
            GatewayInvoker(self.url, credentials=self._poller_credentials()),
            SourceMetrics(self.gateway.invoker.metrics.registry),
            region=self.settings.region,
            state_dir=self.settings.state / "sources",
            nats_url=self.settings.nats_url,
            on_status=lambda c, s: self.say(f"  event source {c.key}: {s.state} ({s.last_result})"),
        )
        # Hooked before the first apply so a reload meanwhile is not missed (applies queue up).
        self.source.on_mappings = self.pollers.apply
        await self.pollers.apply(self.source.mappings)
        self._announce()

    def _function_line(self, env: Environment, line: str) -> None:
        """A line an environment wrote: buffered for `kubelambda logs`, printed with its
        function and version (a multi-line record's carriage returns as indented lines)."""
        spec = env.spec
        if spec is None:
            self.function_lines(f"[{env.runtime} warm] {line}")
            return
        self.logbook.add(spec.namespace, spec.function_name, spec.function_version, line)
        name = spec.function_name
        if spec.namespace != self.settings.namespace:
            name = f"{spec.namespace}.{name}"
        shown = line.replace("\r", "\n    ")
        self.function_lines(f"[{name}:{spec.function_version}] {shown}")

    def _announce(self) -> None:
        assert self.source.loaded is not None
        catalog = self.source.loaded.catalog
        count = len(catalog.functions)
        self.say(f"kubelambda dev: serving {count} function(s) from {self.settings.folder}")
        shown_names: list[str] = []
        for (namespace, name), entry in sorted(catalog.functions.items()):
            shown = name if namespace == self.settings.namespace else f"{namespace}.{name}"
            shown_names.append(shown)
            invoke = f"{self.url}/2015-03-31/functions/{shown}/invocations"
            qualifiers = [LATEST, *sorted(entry.versions, key=int)]
            qualifiers += [f"{a} ({entry.aliases[a].describe()})" for a in sorted(entry.aliases)]
            self.say(f"  {shown:<24} {invoke}")
            self.say(f"  {'':<24} qualifiers: {', '.join(qualifiers)}")
            config = entry.latest.spec.function_url
            if config is not None:
                url = self.gateway.urls.domain.url(namespace, name)
                path = f"{self.url}/urls/{namespace}/{name}/"
                self.say(f"  {'':<24} url ({config.auth_type}): {url} (or {path})")
        self.say(f"async queue: {self.asynq.queue.describe()}")
        if self.source.mappings:
            self.say(f"event sources: polling {len(self.source.mappings)} mapping(s)")
        auth = ",".join(sorted(self.settings.auth)) or "none (anyone who reaches the port)"
        self.say(f"invoke auth: {auth}")
        hint = ready_hint(self.url, self.settings.region, shown_names, bool(self.settings.auth))
        self.say(f"ready: {hint}")

    async def reload(self) -> bool:
        return await self.source.reload(self.gateway.apply)

    async def reload_quietly(self) -> None:
        """After a control API write: serve what the state folder now holds."""
        await self.source.reload(self.gateway.apply)

    def refused_reservation(self, namespace: str, name: str) -> int | None:
        return self.gateway.invoker.refused_reservation(namespace, name)

    def _poller_credentials(self) -> SigV4Key | None:
        """With --auth sigv4, the pollers sign with the first key of --keys (as the chart's
        pollers sign with the gateway's Secret)."""
        if "sigv4" not in self.settings.auth or self.settings.keys is None:
            return None
        return read_sigv4_key(self.settings.keys, self.settings.region)

    def function_url(self, namespace: str, name: str) -> str:
        """A function's URL as the gateway routes it (the --url-domain, the port served)."""
        return self.gateway.urls.domain.url(namespace, name)

    async def stop(self) -> None:
        if self.pollers is not None:  # first, so no batch starts while the gateway drains
            self.source.on_mappings = None
            await self.pollers.close()
            await self.pollers.invoker.close()
        await self.gateway.stop()
