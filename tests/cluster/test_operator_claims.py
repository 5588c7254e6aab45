"""Claiming warm pods on the real apiserver: two gateway providers race for one pod; its agent
takes one specialization only, so exactly one wins, and the loser moves on (here: waits, within
its bound, for another pod). Connections opened ahead to a warm agent serve the take, and are
closed by the other replica once the pod is claimed. The winner's claim labels follow; the
operator's retire is the other side of the agent's lock (a pod taken before its labels are
written is never deleted); a provisioned pod's claim is decided by the write's resourceVersion
precondition.

The pod is written by the real pod builder, bound by the real scheduler and run by the process
kubelet until Ready; no operator runs, so nothing else creates or claims pods meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from kubelambda.addresses import http_url
from kubelambda.gateway.cluster.provider import ClaimSettings, ClusterProvider, NoCapacity
from kubelambda.kube.client import ApiError, KubeApi
from kubelambda.kube.contract import AGENT_PORT, PodInfo
from kubelambda.kube.view import ClusterView
from kubelambda.operator.config import OperatorConfig
from kubelambda.operator.podbuilder import PodRequest, build_pod
from kubelambda.operator.retire import Retirer, needs_retire
from kubelambda.runtime.errors import EnvironmentStateError
from kubelambda.runtime.remote import RemoteEnvironment
from kubelambda.runtime.spec import CodeRef, EnvironmentSpec, InvokeRequest
from kubelambda.serving.shape import PodShape
from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.waiting import wait_pod_ready
from tests.cluster.lambda_stack import admin_api

CONFIG = OperatorConfig(agent_image="kubelambda/kubelambda:0.1.0", namespaces=("default",))
READY_WITHIN = 60.0
SPEC = EnvironmentSpec(
    function_name="hello",
    function_arn="arn:aws:lambda:us-east-1:000000000000:function:default.hello",
    runtime="python3.12",
    handler="app.handler",
    code=CodeRef(inline={"app.py": "def handler(e, c):\n    return 1\n"}),
)


def spec_in(namespace: str) -> EnvironmentSpec:
    arn = SPEC.function_arn.replace(":default.", f":{namespace}.")
    return SPEC.model_copy(update={"namespace": namespace, "function_arn": arn})


SHAPE = PodShape("python3.12", 128, 512)


async def warm_pod(api: KubeApi, namespace: str) -> dict[str, Any]:
    """A generic warm pod as the operator makes it, once the kubelet reports it Ready."""
    request = PodRequest("generic", namespace, CONFIG.generic_shape("python3.12"))
    pod = await api.create(f"/api/v1/namespaces/{namespace}/pods", build_pod(CONFIG, request))
    name = pod["metadata"]["name"]
    core = kubernetes.client.CoreV1Api()  # the kubeconfig fixture's default configuration
    await asyncio.to_thread(wait_pod_ready, core, namespace, name, timeout=READY_WITHIN)
    return await api.get(f"/api/v1/namespaces/{namespace}/pods/{name}")


async def replica(
    api: KubeApi, identity: str, namespace: str
) -> tuple[ClusterProvider, ClusterView]:
    view = ClusterView(api, [namespace])
    view.start()
    await view.wait_synced(10)
    settings = ClaimSettings(identity=identity, claim_timeout=1.0)
    return ClusterProvider(api, view, settings), view


@pytest.mark.timeout(60)
async def test_two_replicas_race_for_one_pod_and_exactly_one_wins(
    cluster: Cluster, namespace: str, kubeconfig: Path
) -> None:
    api = admin_api(cluster)
    try:
        pod = await warm_pod(api, namespace)
        (a, view_a), (b, view_b) = (
            await replica(api, "gw-a", namespace),
            await replica(api, "gw-b", namespace),
        )
        for view in (view_a, view_b):
            while view.get("pods", namespace, pod["metadata"]["name"]) is None:
                await view.wait_for_pods(5)
        started = time.monotonic()
        outcomes = await asyncio.gather(
            a.claim(spec_in(namespace), SHAPE),
            b.claim(spec_in(namespace), SHAPE),
            return_exceptions=True,
        )
        winners = [o for o in outcomes if not isinstance(o, BaseException)]
        losers = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        assert isinstance(losers[0], NoCapacity)
        assert "within 1 s" in str(losers[0])
        assert time.monotonic() - started < 10, "the loser waits within its bound only"
        assert a.conflicts + b.conflicts == 1, "the loser's specialization was refused with 409"
        await asyncio.gather(a.settled(), b.settled())
        claimed, remote = winners[0]
        assert (await remote.refresh())["spec"]["functionName"] == "hello"
        assert claimed.name == pod["metadata"]["name"]
        stored = await api.get(f"/api/v1/namespaces/{namespace}/pods/{claimed.name}")
        labels = stored["metadata"]["labels"]
        winner = "gw-a" if a.claimed_total else "gw-b"
        assert labels["kubelambda.dev/state"] == "claimed"
        assert labels["kubelambda.dev/claimed-by"] == winner
        assert labels["kubelambda.dev/function"] == "hello"
        assert labels["kubelambda.dev/version"] == "LATEST"
        # The claim dropped the pod's field ownership (cheaper writes): no entry for the spec
        # the pod was created with remains.
        before = pod["metadata"]["managedFields"]
        assert any("f:spec" in entry.get("fieldsV1", {}) for entry in before)
        after = stored["metadata"].get("managedFields") or []
        assert not any("f:spec" in entry.get("fieldsV1", {}) for entry in after), after
        for provider, view in ((a, view_a), (b, view_b)):
            await provider.stop_all()
            await view.stop()
    finally:
        await api.close()


@pytest.mark.timeout(60)
async def test_connections_opened_ahead_serve_the_take_and_close_once_another_replica_took_it(
    cluster: Cluster, namespace: str, kubeconfig: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = admin_api(cluster)
    try:
        pod = await warm_pod(api, namespace)
        name = pod["metadata"]["name"]
        (a, view_a), (b, view_b) = (
            await replica(api, "gw-a", namespace),
            await replica(api, "gw-b", namespace),
        )
        for provider, view in ((a, view_a), (b, view_b)):
            while view.get("pods", namespace, name) is None:
                await view.wait_for_pods(5)
            provider.ahead.sync(view.pod_infos())  # as connect_ahead_forever does on a change
            await provider.ahead.settled()
            assert len(provider.ahead) == 1, "the warm agent answered its state"
        caplog.set_level("INFO", logger="kubelambda.gateway.cluster.provider")
        claimed, remote = await a.claim(spec_in(namespace), SHAPE)
        assert claimed.name == name and len(a.ahead) == 0
        result = await remote.invoke(InvokeRequest(invoked_function_arn=SPEC.function_arn))
        assert result.payload == b"1"
        await a.settled()
        assert f"{name} for hello" in caplog.text and "connections opened ahead" in caplog.text
        # b sees a's labels: its connections to the pod are closed, and it never takes it.
        while (view_b.get("pods", namespace, name) or {}).get("metadata", {}).get("labels", {}).get(
            "kubelambda.dev/state"
        ) != "claimed":
            await view_b.wait_for_pods(5)
        b.ahead.sync(view_b.pod_infos())
        await b.ahead.settled()
        assert len(b.ahead) == 0
        with pytest.raises(NoCapacity):
            await b.claim(spec_in(namespace), SHAPE)
        for provider, view in ((a, view_a), (b, view_b)):
            await provider.stop_all()
            await view.stop()
    finally:
        await api.close()


@pytest.mark.timeout(60)
async def test_a_released_pod_is_marked_for_the_operator(
    cluster: Cluster, namespace: str, kubeconfig: Path
) -> None:
    api = admin_api(cluster)
    try:
        pod = await warm_pod(api, namespace)
        provider, view = await replica(api, "gw-a", namespace)
        while view.get("pods", namespace, pod["metadata"]["name"]) is None:
            await view.wait_for_pods(5)
        slot = await provider.start_environment("python3.12")
        slot.pod, slot.remote = await provider.claim(spec_in(namespace), SHAPE)
        provider.hold(slot)
        assert list(provider.held) == [pod["metadata"]["name"]]
        await provider.stop_environment(slot)
        stored = await api.get(f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}")
        assert stored["metadata"]["labels"]["kubelambda.dev/state"] == "released"
        assert not provider.held
        await provider.stop_all()
        await view.stop()
    finally:
        await api.close()


@pytest.mark.timeout(60)
async def test_the_operator_cannot_delete_a_pod_claimed_after_it_looked(
    cluster: Cluster, namespace: str, kubeconfig: Path
) -> None:
    """The keeper deletes free pods only as it saw them (resourceVersion precondition)."""
    api = admin_api(cluster)
    try:
        seen = await warm_pod(api, namespace)
        provider, view = await replica(api, "gw-a", namespace)
        while view.get("pods", namespace, seen["metadata"]["name"]) is None:
            await view.wait_for_pods(5)
        claimed, _remote = await provider.claim(spec_in(namespace), SHAPE)
        await provider.settled()
        path = f"/api/v1/namespaces/{namespace}/pods/{claimed.name}"
        with pytest.raises(ApiError) as refused:
            await api.delete(path, resource_version=seen["metadata"]["resourceVersion"])
        assert refused.value.status == 409
        assert (await api.get(path))["metadata"]["labels"]["kubelambda.dev/state"] == "claimed"
        await provider.stop_all()
        await view.stop()
    finally:
        await api.close()


@pytest.mark.timeout(60)
async def test_a_pod_taken_before_its_labels_are_written_is_never_retired(
    cluster: Cluster, namespace: str, kubeconfig: Path
) -> None:
    """The window a gateway leaves open (its claim's labels follow the specialization): the
    keeper's retire, asked then, is refused and the pod is not to be deleted; a pod nobody took
    is retired, and then no gateway can take it."""
    api = admin_api(cluster)
    retirer = Retirer(agent_key=None)
    try:
        taken, free = await asyncio.gather(warm_pod(api, namespace), warm_pod(api, namespace))
        taken_info, free_info = PodInfo.from_pod(taken), PodInfo.from_pod(free)
        assert taken_info.state == free_info.state == "warm" and needs_retire(taken_info)
        gateway = RemoteEnvironment(http_url(str(taken_info.ip), AGENT_PORT))
        await gateway.specialize(spec_in(namespace))  # no label written: the window held open
        assert not await retirer.may_delete(taken_info)
        assert (await gateway.refresh())["spec"]["functionName"] == "hello"

        assert await retirer.may_delete(free_info)
        late = RemoteEnvironment(http_url(str(free_info.ip), AGENT_PORT))
        with pytest.raises(EnvironmentStateError):
            await late.specialize(spec_in(namespace))
        assert await retirer.may_delete(free_info), "a retired pod retires again (a retry)"
        for remote in (gateway, late):
            await remote.close()
    finally:
        await retirer.close()
        await api.close()


@pytest.mark.timeout(60)
async def test_a_claim_at_a_seen_version_wins_once_even_from_a_lagging_view(
    cluster: Cluster, namespace: str, kubeconfig: Path
) -> None:
    """Two replicas that judged the same version of a pod (here from a view never started, so
    nothing but the resourceVersion they carry decides): the first claim wins, the second is
    refused with 409, and the winner's write dropped the pod's field ownership."""
    api = admin_api(cluster)
    try:
        pod = await warm_pod(api, namespace)
        info = PodInfo.from_pod(pod)
        blind = ClusterView(api, [namespace])  # not started: holds no pods
        first = ClusterProvider(api, blind, ClaimSettings(identity="gw-a"))
        second = ClusterProvider(api, blind, ClaimSettings(identity="gw-b"))
        won = await first._try_claim(info, spec_in(namespace), "rev")
        assert won is not None and won.state == "claimed" and won.claimed_by == "gw-a"
        assert await second._try_claim(info, spec_in(namespace), "rev") is None
        assert second.conflicts == 1
        stored = await api.get(f"/api/v1/namespaces/{namespace}/pods/{info.name}")
        assert stored["metadata"]["labels"]["kubelambda.dev/claimed-by"] == "gw-a"
        after = stored["metadata"].get("managedFields") or []
        assert not any("f:spec" in entry.get("fieldsV1", {}) for entry in after), after
    finally:
        await api.close()
