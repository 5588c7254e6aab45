"""A watch that outlives an etcd compaction recovers: the gateway's watch layer
(`ResourceWatch`) resumes from a compacted resourceVersion, the real apiserver answers 410 Gone,
and the layer relists and carries on with every object current.

PodTemplates are served without the apiserver's watch cache (see the harness), so their watches
are etcd's own, where a compaction makes older revisions unwatchable; nothing is injected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import kubernetes
import pytest

from kubelambda.kube.client import KubeApi, collection
from kubelambda.kube.view import ResourceWatch
from tests.cluster.harness.cluster import Cluster

TEMPLATE = {"template": {"spec": {"containers": [{"name": "c", "image": "python:3.12"}]}}}


class CountingWatch(ResourceWatch):
    """The real watch, counting its (re)lists."""

    relists = 0

    async def _relist(self) -> str:
        self.relists += 1
        return await super()._relist()


async def _until(check: Callable[[], bool], within: float) -> None:
    """Poll a condition until it holds, failing after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within:g} s"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(90)
async def test_a_watch_that_outlives_a_compaction_relists_and_stays_current(
    cluster: Cluster, namespace: str, kubeconfig: Path
) -> None:
    core = kubernetes.client.CoreV1Api()
    create = core.create_namespaced_pod_template
    await asyncio.to_thread(create, namespace, {"metadata": {"name": "t0"}, **TEMPLATE})
    assert cluster.control.pki is not None
    api = KubeApi(cluster.url, ssl_context=cluster.control.ssl_context(cluster.control.pki.admin))
    watch = CountingWatch(
        api,
        "podtemplates",
        collection("", "v1", "podtemplates", namespace),
        None,
        lambda _: None,
        timeout=2,  # the server ends each watch after 2 s; the layer resumes where it was
    )
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.wait_for(watch.synced.wait(), 10)
        assert set(watch.objects) == {(namespace, "t0")} and watch.relists == 1
        # Other writes move etcd past the watch's last revision; then the apiserver compacts.
        for index in range(3):
            body = {"metadata": {"name": f"bump{index}"}}
            await asyncio.to_thread(core.create_namespaced_config_map, namespace, body)
        compacted = await asyncio.to_thread(cluster.control.compact)
        await _until(lambda: watch.relists >= 2, 20)  # the resumed watch met 410 Gone
        await asyncio.to_thread(create, namespace, {"metadata": {"name": "t1"}, **TEMPLATE})
        await asyncio.to_thread(core.delete_namespaced_pod_template, "t0", namespace)
        await _until(lambda: set(watch.objects) == {(namespace, "t1")}, 20)
        rv = int(watch.objects[(namespace, "t1")]["metadata"]["resourceVersion"])
        assert rv > compacted
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await api.close()
