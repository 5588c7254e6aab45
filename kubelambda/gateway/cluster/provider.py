"""ClusterProvider: execution environments that are warm pods, claimed from the operator's pools.

The dispatch core asks a provider for a generic environment and then specializes it with the
`Target` name resolution produced. Here the environment is a `PodSlot`, and the pod is chosen only
when the slot is specialized, because only then are the function's namespace and shape (carried
by the target) known: claim a matching pod (its labels written with a resourceVersion
precondition, `kube/claims.py`; on 409 another replica won, so try the next), then POST the spec
to its agent (`RemoteEnvironment`). A provisioned pod was specialized at start and is only claimed.
With no pod to claim, it waits for the operator to add one, within a bound. The gateway never
creates or deletes pods: it releases them (a label) and the operator deletes them. Claims are a
lease the provider renews in the background; an unrenewed claim is reaped by the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import aiohttp

from kubelambda.addresses import http_url
from kubelambda.kube import claims
from kubelambda.kube.agentauth import agent_token
from kubelambda.kube.client import ApiError, KubeApi, collection
from kubelambda.kube.contract import PodInfo, spec_revision
from kubelambda.kube.view import ClusterView
from kubelambda.runtime.remote import RemoteEnvironment
from kubelambda.runtime.spec import EnvironmentSpec, InvokeRequest, InvokeResult
from kubelambda.runtime.stream import ResponseStream
from kubelambda.serving.shape import PodShape
from kubelambda.serving.target import InitType, Target

log = logging.getLogger(__name__)


class NoCapacity(RuntimeError):
    """No pod could be claimed within the bound."""


@dataclass(frozen=True)
class ClaimSettings:
    identity: str
    claim_timeout: float = 30.0  # on-demand: the bounded wait for a warm pod
    provisioned_timeout: float = 120.0  # background fill of provisioned concurrency
    lease: float = 60.0  # the operator reaps claims not renewed for this long
    specialize_timeout: float = 60.0  # the agent's fetch of code and release of the shim
    agent_port: int = 8080
    agent_key: bytes | None = None  # derives each pod's agent token (kube/agentauth.py)


class PodSlot:
    """One environment: no pod until specialized, then one claimed pod driven over HTTP."""

    def __init__(self, provider: ClusterProvider, runtime: str) -> None:
        self.provider = provider
        self.runtime = runtime
        self.pod: PodInfo | None = None
        self.remote: RemoteEnvironment | None = None
        self.last_used = time.time()
        self._stopped = False

    @property
    def alive(self) -> bool:
        if self._stopped:
            return False
        if self.pod is None or self.remote is None:
            return True  # not claimed yet
        return self.remote.alive and self.provider.pod_alive(self.pod)

    async def specialize(self, spec: EnvironmentSpec, shape: PodShape) -> None:
        started = time.perf_counter()
        pod, remote = await self.provider.claim(spec, shape)
        claimed = time.perf_counter()
        self.pod, self.remote = pod, remote
        self.provider.hold(self)
        try:
            if spec.initialization_type == "provisioned-concurrency":
                state = await remote.refresh()  # specialized at start by the operator's spec
                served = state.get("spec") or {}
                if served.get("functionName") != spec.function_name:
                    raise RuntimeError(f"pod {pod.name} serves {served or 'nothing'}")
            else:
                # Fetching code (a URL) can take a while; a hung agent must not hold the call.
                async with asyncio.timeout(self.provider.settings.specialize_timeout):
                    await remote.specialize(spec)
        except BaseException:
            await self.stop()
            raise
        # The cold start's phases as this replica saw them (bench/cluster.py reads this line).
        log.info(
            "specialized pod %s/%s for %s: claim %.1f ms, specialize %.1f ms (the claim's "
            "write %.1f ms)",
            pod.namespace,
            pod.name,
            spec.function_name,
            (claimed - started) * 1000,
            (time.perf_counter() - claimed) * 1000,
            self.provider.write_ms.pop(pod.name, 0.0),
        )

    async def invoke(
        self, request: InvokeRequest, stream: ResponseStream | None = None
    ) -> InvokeResult:
        if self.remote is None:
            raise RuntimeError("invoke before specialize")
        self.last_used = time.time()
        try:
            return await self.remote.invoke(request, stream)
        finally:
            self.last_used = time.time()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.pod is not None:
            await self.provider.release(self)


class ClusterProvider:
    """The `EnvironmentProvider` of cluster mode; see the module docstring."""

    def __init__(self, api: KubeApi, view: ClusterView, settings: ClaimSettings) -> None:
        self.api = api
        self.view = view
        self.settings = settings
        self.held: dict[str, PodSlot] = {}  # pod name -> slot, pods this replica holds
        self.claimed_total = 0
        self.conflicts = 0
        self._session: aiohttp.ClientSession | None = None
        self.write_ms: dict[str, float] = {}  # pod name -> its claim's write, until logged

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
            # No cap on connections: each held pod keeps its agent's channel open for good.
            connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self._session

    async def start_environment(self, runtime: str) -> PodSlot:
        return PodSlot(self, runtime)

    async def specialize(self, env: PodSlot, target: Target, init: InitType) -> None:
        await env.specialize(target.spec(init), target.shape)

    async def stop_environment(self, env: PodSlot) -> None:
        await env.stop()

    async def stop_all(self) -> None:
        await asyncio.gather(*(slot.stop() for slot in list(self.held.values())))
        if self._session is not None:
            await self._session.close()
            self._session = None

    def pod_alive(self, pod: PodInfo) -> bool:
        current = self.view.get("pods", pod.namespace, pod.name)
        if current is None or not claims.serving(current):
            return False
        # And on a Ready Node: the Node itself is marked first, so stop at once.
        return self.view.node_ready((current.get("spec") or {}).get("nodeName"))

    @staticmethod
    def _want(spec: EnvironmentSpec, shape: PodShape) -> claims.Want:
        provisioned = spec.initialization_type == "provisioned-concurrency"
        return claims.Want(
            namespace=spec.namespace,
            function=spec.function_name,
            runtime=spec.runtime,
            shape=shape,
            revision=spec_revision(spec) if provisioned else None,
        )

    async def claim(
        self, spec: EnvironmentSpec, shape: PodShape
    ) -> tuple[PodInfo, RemoteEnvironment]:
        """Claim a pod of `shape` for `spec`, waiting within the bound for capacity."""
        want = self._want(spec, shape)
        revision = want.revision or spec_revision(spec)
        bound = (
            self.settings.provisioned_timeout
            if want.revision is not None
            else self.settings.claim_timeout
        )
        deadline = time.monotonic() + bound
        tried: set[str] = set()
        while True:
            pods = self.view.pod_infos()
            for pod in claims.candidates(pods, want, tried):
                tried.add(pod.name)
                won = await self._try_claim(pod, spec, revision)
                if won is not None:
                    assert won.ip is not None  # only pods with an IP are candidates
                    url = http_url(won.ip, self.settings.agent_port)  # [v6] bracketed
                    key = self.settings.agent_key
                    token = agent_token(key, won.agent_nonce) if key and won.agent_nonce else None
                    return won, RemoteEnvironment(url, session=self._client(), token=token)
            left = deadline - time.monotonic()
            if left <= 0:
                kind = "provisioned" if want.revision else "warm"
                raise NoCapacity(
                    f"no {kind} pod for {spec.runtime} in namespace {spec.namespace} could be "
                    f"claimed within {bound:g} s; the operator keeps the pools (check its logs "
                    "and --warm-pool)"
                )
            await self.view.wait_for_pods(min(left, 1.0))
            tried.clear()  # pods seen again after a change may be claimable now

    async def _try_claim(
        self, pod: PodInfo, spec: EnvironmentSpec, revision: str
    ) -> PodInfo | None:
        path = f"{collection('', 'v1', 'pods', pod.namespace)}/{pod.name}"
        body = claims.claim_patch(
            pod,
            self.settings.identity,
            spec.function_name,
            spec.function_version,
            revision,
            time.time(),
        )
        started = time.perf_counter()
        try:
            answer = await self.api.patch(path, body)
        except ApiError as exc:
            if exc.status in (404, 409):  # gone, or another replica won it
                if exc.status == 409:
                    self.conflicts += 1
                    log.info("pod %s/%s was claimed by another replica", pod.namespace, pod.name)
                return None
            raise
        written = (time.perf_counter() - started) * 1000
        self.view.remember("pods", answer)  # so no one here tries it again
        self.claimed_total += 1
        self.write_ms[pod.name] = written
        log.info("claimed pod %s/%s for %s", pod.namespace, pod.name, spec.function_name)
        return PodInfo.from_pod(answer)

    async def release(self, slot: PodSlot) -> None:
        pod = slot.pod
        if pod is None:
            return
        self.held.pop(pod.name, None)
        self.write_ms.pop(pod.name, None)
        if slot.remote is not None:
            await slot.remote.close()
        path = f"{collection('', 'v1', 'pods', pod.namespace)}/{pod.name}"
        try:
            await self.api.patch(path, claims.release_patch())
        except ApiError as exc:
            if exc.status != 404:
                log.warning("releasing pod %s failed: %s", pod.name, exc)
        except aiohttp.ClientError as exc:
            log.warning("releasing pod %s failed: %s", pod.name, exc)

    def hold(self, slot: PodSlot) -> None:
        if slot.pod is not None:
            self.held[slot.pod.name] = slot

    async def renew_forever(self) -> None:
        """Renew every claim this replica holds, at a third of the lease."""
        while True:
            await asyncio.sleep(self.settings.lease / 3)
            await self.renew()

    async def renew(self) -> None:
        now = time.time()

        async def one(slot: PodSlot) -> None:
            assert slot.pod is not None
            path = f"{collection('', 'v1', 'pods', slot.pod.namespace)}/{slot.pod.name}"
            with contextlib.suppress(ApiError, aiohttp.ClientError):
                await self.api.patch(path, claims.renew_patch(now, slot.last_used))

        await asyncio.gather(*(one(s) for s in list(self.held.values()) if s.pod is not None))
