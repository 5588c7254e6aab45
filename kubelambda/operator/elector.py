"""The leader elector: takes, renews and releases the operator's Lease (decisions in
leadership.py), and answers `/healthz` while this replica waits as a standby.

`acquire()` returns once this replica leads; `hold()` renews every `retry` seconds and returns
when the lease is lost (another holder, or no successful renewal within `renew_deadline`); the
caller must then stop acting at once. `release()` gives the Lease up at a clean stop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from aiohttp import web

from kubelambda.kube.client import ApiError, KubeApi, collection
from kubelambda.operator import leadership
from kubelambda.operator.leadership import LeaseTimes, Observed

log = logging.getLogger(__name__)


class LeaderElector:
    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        name: str,
        identity: str,
        times: LeaseTimes | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.times = times or LeaseTimes()
        self._observed: Observed | None = None
        self._lease: dict[str, Any] | None = None
        self._renewed: float | None = None  # monotonic time of the last successful write

    def fresh(self) -> bool:
        """Whether this replica renewed within the renew deadline: checked before each write to
        pods, so a leader frozen past its lease (SIGSTOP, a stalled node) writes nothing when
        it wakes, even before `hold()` notices."""
        if self._renewed is None:
            return False
        return time.monotonic() - self._renewed < self.times.renew_deadline

    @property
    def _path(self) -> str:
        return f"{collection('coordination.k8s.io', 'v1', 'leases', self.namespace)}/{self.name}"

    async def try_once(self) -> bool:
        """One attempt to take or renew the Lease; True when this replica holds it now."""
        try:
            lease: dict[str, Any] | None = await self.api.get(self._path)
        except ApiError as exc:
            if exc.status != 404:
                raise
            lease = None
        self._observed = leadership.observe(lease, time.monotonic(), self._observed)
        if not leadership.may_take(self._observed, self.identity, time.monotonic()):
            return False
        body = leadership.claimed(
            lease,
            namespace=self.namespace,
            name=self.name,
            identity=self.identity,
            times=self.times,
            wall=time.time(),
        )
        try:
            if lease is None:
                written = await self.api.create(self._path.rsplit("/", 1)[0], body)
            else:
                written = await self.api.replace(self._path, body)
        except ApiError as exc:
            if exc.status in (409, 422):  # someone else wrote it first (or created it)
                return False
            raise
        self._lease = written
        self._renewed = time.monotonic()
        self._observed = leadership.observe(written, time.monotonic(), None)
        return True

    async def acquire(self) -> None:
        """Wait until this replica leads."""
        waiting_for = None
        while True:
            try:
                if await self.try_once():
                    log.info("leading: holding lease %s/%s", self.namespace, self.name)
                    return
            except (ApiError, OSError, TimeoutError) as exc:
                log.warning("taking lease %s failed: %s", self.name, exc)
            holder = self._observed.holder if self._observed else None
            if holder != waiting_for:
                log.info("standing by: lease %s is held by %s", self.name, holder)
                waiting_for = holder
            await asyncio.sleep(self.times.retry * random.uniform(1.0, 1.1))

    async def hold(self) -> None:
        """Renew until the lease is lost; returns then (the caller stops at once)."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.times.retry)
            try:
                async with asyncio.timeout(self.times.renew_deadline):
                    if await self.try_once():
                        renewed = time.monotonic()
                        continue
                log.error("lease %s was taken by %s", self.name, self._observed)
                return
            except (ApiError, OSError, TimeoutError) as exc:
                log.warning("renewing lease %s failed: %s", self.name, exc)
            if time.monotonic() - renewed >= self.times.renew_deadline:
                deadline = self.times.renew_deadline
                log.error("lease %s not renewed within %.0f s", self.name, deadline)
                return

    async def release(self) -> None:
        if self._lease is None:
            return
        try:
            await self.api.replace(self._path, leadership.released(self._lease, time.time()))
            log.info("released lease %s", self.name)
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("releasing lease %s failed: %s", self.name, exc)


async def standby_health(host: str, port: int) -> web.AppRunner:
    """`/healthz` while waiting: a standby is alive (kopf serves its own once leading)."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"standby": True})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
