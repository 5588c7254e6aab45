"""Connections opened ahead to the agents of warm pods, so that a cold start finds them open.

A cold start POSTs the spec to a warm pod's agent, then sends its first call on the agent's
channel (a WebSocket). Opened at the take, the two connections (a TCP connect for the POST, a
connect and an upgrade for the channel) put round trips, and the agent's handling of them, on
the cold start's path. `ConnectionsAhead` keeps, for each pod an on-demand call could take
(`claims.takeable`), a `RemoteEnvironment` with its channel open and an idle HTTP connection to
the agent in the provider's pool, refreshed before the pool would close it; the provider takes
one at the take. A pod that leaves the pool (another replica took it, the operator retired or
deleted it) has its connections closed. At most `limit` pods are kept per gateway replica.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Coroutine, Iterable
from typing import Any

import aiohttp

from kubelambda.kube import claims
from kubelambda.kube.contract import PodInfo
from kubelambda.runtime.remote import AgentError, RemoteEnvironment
from kubelambda.runtime.spec import EnvState

log = logging.getLogger(__name__)

# Below the connector's keep-alive (`KEEPALIVE`): the agent's idle HTTP connection is used again
# before the pool would close it.
REFRESH = 40.0
KEEPALIVE = 60.0  # the provider's connector; aiohttp's web server keeps idle ones for 75 s
LIMIT = 64


def _key(pod: PodInfo) -> tuple[str, str, str | None, str]:
    """A pod's identity for its connections: a new pod with the same name has a new nonce."""
    return pod.namespace, pod.name, pod.ip, pod.agent_nonce


class ConnectionsAhead:
    """See the module docstring. `connect(pod)` makes the client for a pod's agent."""

    def __init__(
        self,
        connect: Callable[[PodInfo], RemoteEnvironment],
        limit: int = LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connect = connect
        self.limit = limit
        self.clock = clock
        self.opened_total = 0
        self._open: dict[tuple[str, str, str | None, str], RemoteEnvironment] = {}
        self._refreshed: dict[tuple[str, str, str | None, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._open)

    def take(self, pod: PodInfo) -> RemoteEnvironment | None:
        """The client opened ahead for `pod`, now the caller's; None if there is none."""
        key = _key(pod)
        self._refreshed.pop(key, None)
        return self._open.pop(key, None)

    def sync(self, pods: Iterable[PodInfo], skip: Collection[str] = ()) -> None:
        """Open connections to the takeable pods not yet connected, close those to pods no
        longer takeable (or named in `skip`: this replica's own), and refresh the ones about to
        idle out. Returns at once; the I/O runs in tasks."""
        takeable = {_key(p): p for p in pods if claims.takeable(p) and p.name not in skip}
        for key in [k for k in self._open if k not in takeable]:
            self._forget(key)
        now = self.clock()
        for key, pod in takeable.items():
            if key in self._open:
                if now - self._refreshed.get(key, now) >= REFRESH:
                    self._refreshed[key] = now
                    self._spawn(self._touch(key, self._open[key]))
                continue
            if len(self._open) >= self.limit:
                continue
            remote = self.connect(pod)
            remote.connect_ahead()  # the channel
            self._open[key] = remote
            self._refreshed[key] = now
            self.opened_total += 1
            self._spawn(self._touch(key, remote))  # the HTTP connection, left in the pool

    async def _touch(
        self, key: tuple[str, str, str | None, str], remote: RemoteEnvironment
    ) -> None:
        """Ask the agent its state: the connection stays pooled. A pod whose agent does not
        answer as a warm one is forgotten (its next sync may connect again)."""
        try:
            state = await remote.refresh()
        except (aiohttp.ClientError, AgentError, OSError, ValueError, KeyError) as exc:
            log.debug("connecting ahead to %s/%s failed: %s", key[0], key[1], exc)
            state = {}
        if state.get("state") != EnvState.WARM and self._open.get(key) is remote:
            self._forget(key)

    def _forget(self, key: tuple[str, str, str | None, str]) -> None:
        remote = self._open.pop(key, None)
        self._refreshed.pop(key, None)
        if remote is not None:
            self._spawn(remote.close())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settled(self) -> None:
        """Wait for the connects, refreshes and closes under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for key in list(self._open):
            self._forget(key)
        await self.settled()
