"""The shared ledger of one gateway replica: the hot path in memory, a sync loop against Leases.

`take`/`put` run on every invocation and never touch the apiserver. A task of its own renews
this replica's heartbeat Lease every quarter of its duration. Every `interval` the loop
(1) reads each served namespace's record Lease, (2) lists the heartbeats (after the reads: a
replica that appears in a record we read has its heartbeat listed too), then (3) plans and
writes each record with its resourceVersion as the precondition. A lost race changes nothing
but this round's growth; the next round retries. When the heartbeat goes unrenewed for 3/4 of
its duration, a timer fences every share.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping

import aiohttp

from kubelambda.gateway.ledger.allot import Bucket, Record
from kubelambda.gateway.ledger.liveness import Beat, Fence, Liveness
from kubelambda.gateway.ledger.share import ReplicaShare
from kubelambda.kube.client import ApiError
from kubelambda.kube.leases import LeaseStore, Stored

log = logging.getLogger(__name__)

Capacities = Callable[[], Mapping[str, Mapping[Bucket, int]]]
FAILURES = (ApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


def replica_name(identity: str) -> str:
    """A replica's identity as a Lease name may spell it."""
    name = re.sub(r"[^a-z0-9.-]+", "-", identity.lower()).strip("-.")
    return name[:200] or "gateway"


def heartbeat_name(replica: str) -> str:
    return f"kubelambda-gateway-{replica}"


def record_name(namespace: str) -> str:
    return f"kubelambda-ledger-{namespace}"


class SharedLedger:
    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        capacities: Capacities,
        *,
        interval: float = 0.2,
        heartbeat: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.me = replica_name(identity)
        self.capacities = capacities
        self.interval = interval
        self.heartbeat = heartbeat
        self.clock = clock
        self.shares: dict[str, ReplicaShare] = {}
        self.liveness = Liveness()
        self.fence = Fence(heartbeat)
        self.synced = False  # every namespace's record has been stored once
        self.conflicts = 0  # writes that lost a race (metrics, bench)
        self._expiry: asyncio.TimerHandle | None = None
        self._beating = False

    # The hot path.

    def take(self, namespace: str, bucket: Bucket) -> bool:
        share = self.shares.get(namespace)
        if share is None:
            share = self.shares[namespace] = ReplicaShare(self.me)
        return share.take(bucket)

    def put(self, namespace: str, bucket: Bucket) -> None:
        share = self.shares.get(namespace)
        if share is not None:
            share.put(bucket)

    def held(self, namespace: str, bucket: Bucket) -> int:
        share = self.shares.get(namespace)
        return share.held.get(bucket, 0) if share is not None else 0

    # The sync loop.

    async def run(self) -> None:
        """Heartbeats and sync rounds until cancelled; then give back what is not in use."""
        await self.beat()  # before the first round, which then does not beat itself
        beating = asyncio.create_task(self._beat_forever(), name="ledger heartbeat")
        try:
            while True:
                try:
                    await self.round()
                except FAILURES as exc:
                    log.warning("ledger: sync round failed: %s", exc)
                await asyncio.sleep(self.interval)
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            if self._expiry is not None:
                self._expiry.cancel()
            await self._give_back()

    async def _beat_forever(self) -> None:
        # Apart from the rounds, so a slow round never lets the heartbeat lapse.
        self._beating = True
        try:
            while True:
                await asyncio.sleep(self.heartbeat / 4)
                await self.beat()
        finally:
            self._beating = False

    async def beat(self) -> None:
        """Renew the heartbeat; a timer fences every share when it runs out unrenewed, however
        long a round takes."""
        sent = self.clock()
        try:
            await self.store.renew(heartbeat_name(self.me), self.me, self.heartbeat)
        except FAILURES as exc:
            log.warning("ledger: heartbeat not renewed: %s", exc)
            return
        self.fence.renewed(sent)
        if self._expiry is not None:
            self._expiry.cancel()
        delay = max(self.fence.until - self.clock(), 0.0)
        self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        if not self.fence.valid(self.clock()):
            log.warning("ledger: heartbeat lapsed; admitting nothing until it is renewed")
            for share in self.shares.values():
                share.fence()

    async def round(self, capacities: Mapping[str, Mapping[Bucket, int]] | None = None) -> None:
        due = self.fence.sent is None or self.clock() - self.fence.sent >= self.heartbeat / 4
        if due and not self._beating:
            await self.beat()  # run() beats in a task; a bare round (tests, bench) beats here
        if not self.fence.valid(self.clock()):
            for share in self.shares.values():
                share.fence()
            return
        caps = self.capacities() if capacities is None else capacities
        namespaces = sorted(set(caps) | set(self.shares))
        stored = {ns: await self.store.read(record_name(ns)) for ns in namespaces}
        beats = await self.store.heartbeats()
        now = self.clock()
        self.liveness.observe((Beat(b.holder, b.renewed, b.duration) for b in beats), now)
        live = self.liveness.live(now) | {self.me}
        synced = True
        for ns in namespaces:
            synced &= await self._sync(ns, stored[ns], caps.get(ns, {}), live)
        self.synced = self.synced or synced
        for beat in beats:  # heartbeats long dead: nobody else cleans them up
            if beat.holder != self.me and self.liveness.dead_for(beat.holder, now) > 3 * (
                beat.duration or self.heartbeat
            ):
                await self.store.remove(beat.name, beat.resource_version)

    async def _sync(
        self, ns: str, stored: Stored, caps: Mapping[Bucket, int], live: set[str]
    ) -> bool:
        share = self.shares.get(ns)
        if share is None:
            share = self.shares[ns] = ReplicaShare(self.me)
        if not self.fence.valid(self.clock()):
            share.fence()
            return False
        record = Record.loads(stored.text)
        plan = share.begin(record, caps, live)
        if plan.record == record and stored.resource_version is not None:
            share.commit()  # the stored record already gives what the plan holds
            return True
        try:
            written = await self.store.write(
                record_name(ns), plan.record.dumps(), stored.resource_version
            )
        except FAILURES:
            share.abort()
            raise
        if written and self.fence.valid(self.clock()):
            share.commit()
            return True
        share.abort()
        self.conflicts += not written
        return False

    async def _give_back(self) -> None:
        """Shrink every allotment to what is in use (best effort: it also expires); the
        heartbeat goes only when nothing is in use, else the others would take it too soon."""
        try:
            for ns, share in self.shares.items():
                for _ in range(3):
                    stored = await self.store.read(record_name(ns))
                    record = Record.loads(stored.text)
                    share.fence()
                    plan = share.begin(record, {}, record.replicas() | {self.me})
                    if await self.store.write(
                        record_name(ns), plan.record.dumps(), stored.resource_version
                    ):
                        break
            if all(share.in_use() == 0 for share in self.shares.values()):
                await self.store.remove(heartbeat_name(self.me))
        except FAILURES as exc:
            log.warning("ledger: allotments not given back (they expire): %s", exc)
