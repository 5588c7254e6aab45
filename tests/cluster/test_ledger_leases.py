"""The shared ledger's Lease I/O on the real apiserver: three replicas (`SharedLedger`, each with
its own API client) race to rewrite one record Lease with resourceVersion preconditions. At no
moment do they together hold more than the bucket; traffic that moves to one replica gives it
90 % of the bucket within seconds; a replica that stops renewing its heartbeat (as after a
kill -9) has its allotment taken by the others once its heartbeat has expired."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from kubelambda.gateway.ledger.allot import Record
from kubelambda.gateway.ledger.sync import SharedLedger, heartbeat_name, record_name
from kubelambda.kube.client import KubeApi, collection
from kubelambda.kube.leases import RECORD_ANNOTATION, LeaseStore
from tests.cluster.harness.cluster import Cluster
from tests.cluster.lambda_stack import admin_api

BUCKET = "fn/f"
CAP = 10
SERVED = "team"  # the namespace whose functions the record is about


class Replica:
    """One SharedLedger and its sync loop (a task we can stop without it giving anything back,
    as a kill -9 would)."""

    def __init__(self, cluster: Cluster, namespace: str, name: str) -> None:
        self.api = admin_api(cluster)
        caps = {SERVED: {BUCKET: CAP}}
        self.ledger = SharedLedger(
            LeaseStore(self.api, namespace), name, lambda: caps, interval=0.05, heartbeat=2.0
        )
        self.task: asyncio.Task[None] | None = None
        self.demand = 0  # callers this replica receives
        self.errors: list[BaseException] = []

    async def _loop(self) -> None:
        while True:
            try:
                await self.ledger.round()
            except Exception as exc:  # kept, and asserted empty by the test
                self.errors.append(exc)
            # The replica's traffic, short calls: those in flight end, `demand` callers try
            # again (refusals count as demand).
            share = self.ledger.shares.get(SERVED)
            if share is not None:
                while share.busy[BUCKET] > 0:
                    share.put(BUCKET)
                for _ in range(self.demand):
                    self.ledger.take(SERVED, BUCKET)
            await asyncio.sleep(self.ledger.interval)

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop())

    async def kill(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def held(self) -> int:
        return self.ledger.held(SERVED, BUCKET)

    def busy(self) -> int:
        share = self.ledger.shares.get(SERVED)
        return share.busy[BUCKET] if share is not None else 0


async def _until(check: Callable[[], bool], within: float, what: str) -> float:
    """Poll `check` until it holds; the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not check():
        assert loop.time() - start < within, f"{what}: not within {within:g} s"
        await asyncio.sleep(0.02)
    return loop.time() - start


async def _stored(api: KubeApi, namespace: str) -> tuple[Record, dict[str, Any]]:
    obj = await api.get(
        f"{collection('coordination.k8s.io', 'v1', 'leases', namespace)}/{record_name(SERVED)}"
    )
    return Record.loads(obj["metadata"]["annotations"][RECORD_ANNOTATION]), obj


@pytest.mark.timeout(120)
async def test_three_replicas_share_one_bucket_exactly(cluster: Cluster, namespace: str) -> None:
    replicas = {n: Replica(cluster, namespace, n) for n in ("gw-a", "gw-b", "gw-c")}
    over: list[dict[str, int]] = []
    stop = asyncio.Event()

    async def watch_bound() -> None:
        # One event loop runs every replica: each check is a consistent snapshot of all three.
        while not stop.is_set():
            # A killed replica's memory no longer admits anything (its calls ended with it).
            alive = [r for r in replicas.values() if r.task is None or not r.task.done()]
            held = {r.ledger.me: r.held() for r in alive}
            if sum(held.values()) > CAP or sum(r.busy() for r in alive) > CAP:
                over.append(held)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch_bound())
    try:
        for replica in replicas.values():
            replica.demand = 34  # 100 callers spread over three
            replica.start()
        await _until(
            lambda: all(r.ledger.synced for r in replicas.values()), 30, "every replica synced"
        )
        await _until(
            lambda: sum(r.busy() for r in replicas.values()) == CAP, 10, "the bucket in use"
        )
        record, obj = await _stored(replicas["gw-a"].api, namespace)
        assert record.total(BUCKET) <= CAP
        assert set(record.given[BUCKET]) <= set(replicas)
        assert obj["metadata"]["labels"]["kubelambda.dev/ledger-role"] == "record"

        # All traffic moves to gw-a.
        replicas["gw-b"].demand = replicas["gw-c"].demand = 0
        replicas["gw-a"].demand = 100
        took = await _until(lambda: replicas["gw-a"].held() >= 9, 10, "gw-a at 90 %")
        print(f"\ngw-a reached 90 % of the bucket {took:.2f} s after traffic moved to it")

        # Traffic spreads again, then gw-c dies without giving anything back.
        replicas["gw-b"].demand = replicas["gw-c"].demand = replicas["gw-a"].demand = 34
        await _until(lambda: replicas["gw-c"].busy() >= 2, 10, "gw-c sharing again")
        await replicas["gw-c"].kill()
        survivors = [replicas["gw-a"], replicas["gw-b"]]
        took = await _until(
            lambda: sum(r.busy() for r in survivors) == CAP, 10, "the survivors taking gw-c's share"
        )
        print(f"the survivors held the whole bucket {took:.2f} s after gw-c stopped")
        assert took >= replicas["gw-a"].ledger.heartbeat / 2  # not before it could expire
        record, _ = await _stored(replicas["gw-a"].api, namespace)
        assert "gw-c" not in record.given.get(BUCKET, {})
        conflicts = sum(r.ledger.conflicts for r in replicas.values())
        print(f"writes that lost a race: {conflicts}")
    finally:
        stop.set()
        await watcher
        for replica in replicas.values():
            if replica.task is not None and not replica.task.done():
                replica.task.cancel()
                await asyncio.gather(replica.task, return_exceptions=True)
        for replica in replicas.values():
            await replica.api.close()
    assert not over, f"more than {CAP} held or in use at once: {over[:5]}"
    assert not [e for r in replicas.values() for e in r.errors], [
        e for r in replicas.values() for e in r.errors
    ]


@pytest.mark.timeout(60)
async def test_a_replica_that_stops_gives_back_what_it_does_not_use(
    cluster: Cluster, namespace: str
) -> None:
    api = admin_api(cluster)
    try:
        caps = {SERVED: {BUCKET: CAP}}
        ledger = SharedLedger(LeaseStore(api, namespace), "Gw_One", lambda: caps, interval=0.05)
        assert ledger.me == "gw-one"  # a Lease name may spell it
        task = asyncio.create_task(ledger.run())
        await _until(lambda: ledger.synced, 30, "synced")
        assert ledger.held(SERVED, BUCKET) == CAP  # alone: all of it, as headroom
        assert ledger.take(SERVED, BUCKET)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        record, _ = await _stored(api, namespace)
        assert record.given[BUCKET] == {"gw-one": 1}  # the one in use stays its own
        leases = await api.list(collection("coordination.k8s.io", "v1", "leases", namespace))
        names = {item["metadata"]["name"] for item in leases["items"]}
        assert heartbeat_name("gw-one") in names  # in use: the heartbeat stays until it expires
        ledger.put(SERVED, BUCKET)
        await ledger._give_back()
        record, _ = await _stored(api, namespace)
        assert BUCKET not in record.given
        leases = await api.list(collection("coordination.k8s.io", "v1", "leases", namespace))
        assert heartbeat_name("gw-one") not in {i["metadata"]["name"] for i in leases["items"]}
        assert json.loads(json.dumps(record.wants)) == {}
    finally:
        await api.close()
