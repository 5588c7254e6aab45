"""The pollers of one process: started, stopped and restarted as the mappings change.

`apply()` takes the mappings this process should poll (dev mode: all of the folder's; a
cluster replica: those whose Lease it holds) and makes it so: new ones start, removed and
disabled ones stop (their position is kept by the source: offsets, pending entries, the
durable consumer, the queue), changed ones restart. A poller that fails (a broker down, bad
credentials) is restarted with backoff; its status says why, with credentials scrubbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubelambda.sources.config import PollerConfig
from kubelambda.sources.destinations import FailureSender
from kubelambda.sources.engine import Context
from kubelambda.sources.invoke import GatewayInvoker
from kubelambda.sources.metrics import SourceMetrics
from kubelambda.sources.readers import runner_for

log = logging.getLogger(__name__)
RESTART_FIRST = 1.0
RESTART_CAP = 30.0
STOP_TIMEOUT = 3.0  # seconds a stopping poller may take (its client's cleanup included)
_USERINFO = re.compile(r"://[^/@\s]+@")

Credentials = Callable[[PollerConfig], Awaitable[dict[str, str]]]
StatusHook = Callable[[PollerConfig, "PollerStatus"], None]


def scrub(text: str) -> str:
    """An error message without the user:password of any URL in it."""
    return _USERINFO.sub("://***@", text)


@dataclass
class PollerStatus:
    state: str = "Creating"
    reason: str = "User action"
    last_result: str = "No records processed"
    changed: float = field(default_factory=time.time)

    def as_status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "stateTransitionReason": self.reason,
            "lastProcessingResult": self.last_result,
        }


class FileState:
    """A mapping's small persistent values as a JSON file (dev mode)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def load(self) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = json.loads(self.path.read_text())
            return loaded
        except (OSError, ValueError):
            return {}

    async def save(self, values: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_suffix(".tmp")
        staging.write_text(json.dumps(values))
        staging.replace(self.path)


@dataclass
class _Running:
    config: PollerConfig
    task: asyncio.Task[None]
    status: PollerStatus


class PollerSet:
    def __init__(
        self,
        invoker: GatewayInvoker,
        metrics: SourceMetrics,
        *,
        region: str = "us-east-1",
        state_dir: Path | None = None,
        credentials: Credentials | None = None,
        on_status: StatusHook | None = None,
        nats_url: str = "nats://127.0.0.1:4222",
        state_for: Callable[[PollerConfig], Any] | None = None,
    ) -> None:
        self.invoker = invoker
        self.metrics = metrics
        self.region = region
        self.state_dir = state_dir
        self.credentials = credentials
        self.on_status = on_status
        self.state_for = state_for
        self.nats_url = nats_url
        self.pollers: dict[str, _Running] = {}
        self.statuses: dict[str, PollerStatus] = {}
        self._applying = asyncio.Lock()  # a reload may arrive while an apply stops pollers
        self._closed = False

    async def apply(self, configs: list[PollerConfig]) -> None:
        async with self._applying:
            if not self._closed:  # a reload that lost the race with close() starts nothing
                await self._apply(configs)

    async def _apply(self, configs: list[PollerConfig]) -> None:
        wanted = {c.key: c for c in configs}
        for key in list(self.pollers):
            running = self.pollers[key]
            config = wanted.get(key)
            if (
                config is None
                or not config.spec.enabled
                or (config.fingerprint() != running.config.fingerprint())
            ):
                await self._stop(key)
                if config is None:
                    self.statuses.pop(key, None)
        for key, config in wanted.items():
            if not config.spec.enabled:
                status = self.statuses.setdefault(key, PollerStatus())
                self._set(config, status, "Disabled", "User action")
                continue
            if key not in self.pollers:
                self._start(config)

    def _set(self, config: PollerConfig, status: PollerStatus, state: str, reason: str) -> None:
        if status.state == state and status.reason == reason:
            return
        status.state, status.reason, status.changed = state, reason, time.time()
        if self.on_status is not None:
            self.on_status(config, status)

    def _result(self, config: PollerConfig, status: PollerStatus, result: str) -> None:
        if status.last_result != result:
            status.last_result = result
            if self.on_status is not None:
                self.on_status(config, status)

    def _start(self, config: PollerConfig) -> None:
        known = config.key in self.statuses
        status = self.statuses.setdefault(config.key, PollerStatus())
        self._set(config, status, "Enabling" if known else "Creating", "User action")
        task = asyncio.create_task(self._supervise(config, status), name=f"poller {config.key}")
        self.pollers[config.key] = _Running(config, task, status)

    async def _context(self, config: PollerConfig, status: PollerStatus) -> Context:
        creds = await self.credentials(config) if self.credentials is not None else {}
        sender = FailureSender(self.invoker, config.namespace, self.region, self.nats_url)
        failure_config = config.spec.destination_config
        destination = failure_config.on_failure if failure_config is not None else None

        async def deliver(record: dict[str, Any]) -> None:
            assert destination is not None
            await sender.send(destination, record)

        state: Any = None
        if self.state_for is not None:
            state = self.state_for(config)
        elif self.state_dir is not None:
            state = FileState(self.state_dir / config.namespace / f"{config.name}.json")
        return Context(
            config=config,
            invoker=self.invoker,
            metrics=self.metrics,
            region=self.region,
            on_result=lambda result: self._result(config, status, result),
            deliver_failure=deliver if destination is not None else None,
            credentials=creds,
            state=state,
        )

    async def _supervise(self, config: PollerConfig, status: PollerStatus) -> None:
        run = runner_for(config.kind)
        delay = RESTART_FIRST
        labels = {
            "namespace": config.namespace,
            "mapping": config.name,
            "function": config.function,
            "source": config.kind,
        }
        self.metrics.running.labels(**labels).set(1)
        last_problem: str | None = None
        try:
            while True:
                started = time.monotonic()
                try:
                    ctx = await self._context(config, status)
                    self._set(config, status, "Enabled", "User action")
                    await run(ctx)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    message = scrub(f"{type(exc).__name__}: {exc}")[:300]
                    if time.monotonic() - started > RESTART_CAP:
                        delay, last_problem = RESTART_FIRST, None  # it had been running
                    # A broker that stays down is said once, not at every retry; the status
                    # line and the metrics keep saying it.
                    level = logging.DEBUG if message == last_problem else logging.WARNING
                    log.log(
                        level,
                        "poller %s failed: %s; retrying in %g s, then with backoff up to %g s"
                        " (the same failure again is not repeated here)",
                        config.key,
                        message,
                        delay,
                        RESTART_CAP,
                    )
                    last_problem = message
                    self._result(config, status, f"PROBLEM: {message}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_CAP)
        finally:
            self.metrics.running.labels(**labels).set(0)

    async def _stop(self, key: str) -> None:
        """Cancel a poller and wait for it, within `STOP_TIMEOUT`: one whose client hangs in
        its cleanup must not hold every later reload (it is left to finish on its own)."""
        running = self.pollers.pop(key)
        running.task.cancel()
        done, _ = await asyncio.wait({running.task}, timeout=STOP_TIMEOUT)
        if not done:
            log.warning("poller %s did not stop within %g s; going on", key, STOP_TIMEOUT)
            return
        with contextlib.suppress(asyncio.CancelledError, Exception):
            running.task.result()

    async def close(self) -> None:
        async with self._applying:
            self._closed = True
            for key in list(self.pollers):
                await self._stop(key)
