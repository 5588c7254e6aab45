"""ClusterProvider: execution environments that are warm pods, claimed from the operator's pools.

The dispatch core asks a provider for a generic environment and then specializes it with the
`Target` name resolution produced. Here the environment is a `PodSlot`, and the pod is chosen only
when the slot is specialized, because only then are the function's namespace and shape (carried by
the target) known. On demand, the chosen warm pod's agent is sent the spec first: an agent takes one
specialization only (any later one, or the operator's retire, answers 409), so the agent decides
which replica won, and the loser tries the next pod. The claim's labels (`kube/claims.py`) are then
written once the first call is answered (or 0.1 s after the take), off the cold start's path: they
tell the operator and the other replicas, they do not decide. A provisioned pod was specialized at
start, so its claim is the write itself, with a resourceVersion precondition (409: another replica
won). With no pod to take, it waits for the operator to add one, within a bound. The gateway never
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
from kubelambda.gateway.cluster.ahead import KEEPALIVE, ConnectionsAhead
from kubelambda.kube import claims
from kubelambda.kube.agentauth import pod_token
from kubelambda.kube.client import ApiError, KubeApi, collection
from kubelambda.kube.contract import STATE, PodInfo, spec_revision
from kubelambda.kube.view import ClusterView
from kubelambda.runtime.archive import CodeError
from kubelambda.runtime.errors import EnvironmentStateError
from kubelambda.runtime.remote import AgentError, RemoteEnvironment
from kubelambda.runtime.spec import EnvironmentSpec, InvokeRequest, InvokeResult
from kubelambda.runtime.stream import ResponseStream
from kubelambda.serving.shape import PodShape
from kubelambda.serving.target import InitType, Target

log = logging.getLogger(__name__)
CLAIM_WRITE_DELAY = 0.1  # seconds a taken pod may stay unlabelled while its first call runs
AHEAD_SETTLE = 0.2  # seconds between passes of the connections ahead over the pods


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
        pod, remote = await self.provider.claim(spec, shape)
        self.pod, self.remote = pod, remote
        self.provider.hold(self)
        if spec.initialization_type != "provisioned-concurrency":
            return  # claim() specialized it
        try:
            state = await remote.refresh()  # specialized at start by the operator's spec
            served = state.get("spec") or {}
            if served.get("functionName") != spec.function_name:
                raise RuntimeError(f"pod {pod.name} serves {served or 'nothing'}")
        except BaseException:
            await self.stop()
            raise

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
            if self.pod is not None:
                self.provider.answered(self.pod.name)

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
        self._taking: set[str] = set()  # pods this replica is specializing now
        self._writes: dict[str, asyncio.Task[None]] = {}  # pod name -> its claim's write
        self._first: dict[str, asyncio.Event] = {}  # pod name -> set once a call was answered
        self.ahead = ConnectionsAhead(self._remote)  # to the agents of pods we may take

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
            # No cap on connections: each held pod keeps its agent's channel open for good.
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE)
            self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self._session

    async def start_environment(self, runtime: str) -> PodSlot:
        return PodSlot(self, runtime)

    async def specialize(self, env: PodSlot, target: Target, init: InitType) -> None:
        await env.specialize(target.spec(init), target.shape)

    async def stop_environment(self, env: PodSlot) -> None:
        await env.stop()

    async def stop_all(self) -> None:
        await self.ahead.close()
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
        """Take a pod of `shape` for `spec`, waiting within the bound for capacity: on demand
        by specializing its agent (the claim's labels follow the first answer), a
        provisioned pod by the claim's preconditioned write (see the module docstring)."""
        want = self._want(spec, shape)
        revision = want.revision or spec_revision(spec)
        provisioned = want.revision is not None
        bound = self.settings.provisioned_timeout if provisioned else self.settings.claim_timeout
        started = time.perf_counter()
        deadline = time.monotonic() + bound
        tried: set[str] = set()
        while True:
            skip = tried | self._taking | self.held.keys()
            for pod in claims.candidates(self.view.pod_infos(), want, skip):
                tried.add(pod.name)
                if provisioned:
                    won = await self._try_claim(pod, spec, revision)
                    if won is not None:
                        return won, self._remote(won)
                    continue
                picked = time.perf_counter()
                taken = await self._take(pod, spec)
                if taken is not None:
                    remote, ahead = taken
                    phases = (
                        (picked - started) * 1000,
                        (time.perf_counter() - picked) * 1000,
                        sum(remote.specialize_timing.values()),
                    )
                    self._first[pod.name] = asyncio.Event()
                    self._writes[pod.name] = asyncio.get_running_loop().create_task(
                        self._write_claim(pod, spec, revision, phases, ahead)
                    )
                    return pod, remote
            left = deadline - time.monotonic()
            if left <= 0:
                kind = "provisioned" if provisioned else "warm"
                raise NoCapacity(
                    f"no {kind} pod for {spec.runtime} in namespace {spec.namespace} could be "
                    f"claimed within {bound:g} s; the operator keeps the pools (check its logs "
                    "and --warm-pool)"
                )
            await self.view.wait_for_pods(min(left, 1.0))
            tried.clear()  # pods seen again after a change may be claimable now

    def _remote(self, pod: PodInfo) -> RemoteEnvironment:
        assert pod.ip is not None  # only pods with an IP are candidates
        url = http_url(pod.ip, self.settings.agent_port)  # [v6] bracketed
        token = pod_token(self.settings.agent_key, pod.agent_nonce)
        return RemoteEnvironment(url, session=self._client(), token=token)

    async def _take(
        self, pod: PodInfo, spec: EnvironmentSpec
    ) -> tuple[RemoteEnvironment, bool] | None:
        """Specialize `pod`'s agent: its client, and whether its connections were opened ahead.
        None if something took it first (another replica's spec, the operator's retire) or its
        agent cannot be reached."""
        prepared = self.ahead.take(pod)
        remote = prepared or self._remote(pod)
        self._taking.add(pod.name)
        try:
            # Fetching code (a URL) can take a while; a hung agent must not hold the call.
            async with asyncio.timeout(self.settings.specialize_timeout):
                await remote.specialize(spec)
            # While the runtime initializes: the first invoke finds the channel open, and the
            # agent handles the upgrade after the spec, not before it.
            remote.connect_ahead()
        except EnvironmentStateError:
            self.conflicts += 1
            log.info("pod %s/%s was taken first (another replica or the operator)", *_at(pod))
            await remote.close()
            return None
        except (CodeError, AgentError):
            await remote.close()  # the agent answered and stays warm: the pod is untouched
            raise
        except aiohttp.ClientError as exc:
            log.warning("pod %s/%s could not be specialized (%s); trying another", *_at(pod), exc)
            await self._abandon(pod, remote)
            return None
        except BaseException:
            await self._abandon(pod, remote)  # cancelled or timed out: it may have taken it
            raise
        finally:
            self._taking.discard(pod.name)
        return remote, prepared is not None

    async def _abandon(self, pod: PodInfo, remote: RemoteEnvironment) -> None:
        """A pod whose specialization may or may not have happened is handed to the operator,
        as this replica saw it (a replica that did take it changes its resourceVersion)."""
        await remote.close()
        body = claims.release_patch(seen=pod.resource_version)
        with contextlib.suppress(ApiError, aiohttp.ClientError):
            await self.api.patch(_pod_path(pod), body)

    async def _write_claim(
        self,
        pod: PodInfo,
        spec: EnvironmentSpec,
        revision: str,
        phases: tuple[float, float, float],
        ahead: bool,
    ) -> None:
        """Label a pod this replica's specialization took, once its first call is answered (or
        after `CLAIM_WRITE_DELAY`, for a long one): the write's encoding and round trip then take
        no CPU from the cold start. Retried until it is written, the pod is gone or the slot is
        released."""
        first = self._first.get(pod.name)
        if first is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLAIM_WRITE_DELAY):
                    await first.wait()
        self._first.pop(pod.name, None)
        body = claims.taken_patch(
            self.settings.identity, spec.function_name, spec.function_version, revision, time.time()
        )
        began = time.perf_counter()
        delay = 0.2
        while True:
            try:
                answer = await self.api.patch(_pod_path(pod), body)
                break
            except ApiError as exc:
                if exc.status == 404:
                    log.warning("pod %s/%s was deleted before its claim was written", *_at(pod))
                    return
                problem: Exception = exc
            except aiohttp.ClientError as exc:
                problem = exc
            log.warning("writing the claim of pod %s/%s failed: %s", *_at(pod), problem)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        self.view.remember("pods", answer)  # so no one here tries it again
        self.claimed_total += 1
        log.info("claimed pod %s/%s for %s", *_at(pod), spec.function_name)
        # The cold start's phases as this replica saw them (bench/cluster.py reads this line).
        log.info(
            "specialized pod %s/%s for %s: pick %.1f ms, specialize %.1f ms (in the agent %.1f "
            "ms); the claim's write %.1f ms, after the first answer; its connections opened %s",
            *_at(pod),
            spec.function_name,
            *phases,
            (time.perf_counter() - began) * 1000,
            "ahead" if ahead else "at the take",
        )

    def answered(self, pod_name: str) -> None:
        """A call on the pod was answered: its claim's write may go."""
        first = self._first.get(pod_name)
        if first is not None:
            first.set()

    async def settled(self) -> None:
        """Wait until every claim this replica took is written (tests, shutdown)."""
        await asyncio.gather(*list(self._writes.values()), return_exceptions=True)

    async def _try_claim(
        self, pod: PodInfo, spec: EnvironmentSpec, revision: str
    ) -> PodInfo | None:
        body = claims.claim_patch(
            pod,
            self.settings.identity,
            spec.function_name,
            spec.function_version,
            revision,
            time.time(),
        )
        try:
            answer = await self.api.patch(_pod_path(pod), body)
        except ApiError as exc:
            if exc.status in (404, 409):  # gone, or another replica won it
                if exc.status == 409:
                    self.conflicts += 1
                    log.info("pod %s/%s was claimed by another replica", *_at(pod))
                return None
            raise
        self.view.remember("pods", answer)  # so no one here tries it again
        self.claimed_total += 1
        log.info("claimed pod %s/%s for %s", *_at(pod), spec.function_name)
        return PodInfo.from_pod(answer)

    async def release(self, slot: PodSlot) -> None:
        pod = slot.pod
        if pod is None:
            return
        self.held.pop(pod.name, None)
        self.answered(pod.name)  # a claim not yet written goes now, before the release
        writing = self._writes.pop(pod.name, None)
        if writing is not None and not writing.done():
            # The release must land after the claim; a write stuck retrying is dropped.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writing), 5.0)
            writing.cancel()
        if slot.remote is not None:
            await slot.remote.close()
        try:
            await self.api.patch(_pod_path(pod), claims.release_patch())
        except ApiError as exc:
            if exc.status != 404:
                log.warning("releasing pod %s failed: %s", pod.name, exc)
        except aiohttp.ClientError as exc:
            log.warning("releasing pod %s failed: %s", pod.name, exc)

    def hold(self, slot: PodSlot) -> None:
        if slot.pod is not None:
            self.held[slot.pod.name] = slot

    async def connect_ahead_forever(self) -> None:
        """Keep connections open to the agents of the pods this replica may take (`ahead.py`),
        synced on every pod change and every few seconds (for the refresh)."""
        while True:
            warm = [
                self.view.pod_info(pod)
                for pod in self.view.objects("pods")
                if ((pod.get("metadata") or {}).get("labels") or {}).get(STATE) == "warm"
            ]
            self.ahead.sync(warm, skip=self._taking | self.held.keys())
            await self.view.wait_for_pods(5.0)
            # One pass for a burst of pod changes (claims, renewals): each pass reads the pods.
            await asyncio.sleep(AHEAD_SETTLE)

    async def renew_forever(self) -> None:
        """Renew every claim this replica holds, at a third of the lease."""
        while True:
            await asyncio.sleep(self.settings.lease / 3)
            await self.renew()

    async def renew(self) -> None:
        now = time.time()

        async def one(slot: PodSlot) -> None:
            assert slot.pod is not None
            with contextlib.suppress(ApiError, aiohttp.ClientError):
                await self.api.patch(_pod_path(slot.pod), claims.renew_patch(now, slot.last_used))

        await asyncio.gather(*(one(s) for s in list(self.held.values()) if s.pod is not None))


def _pod_path(pod: PodInfo) -> str:
    return f"{collection('', 'v1', 'pods', pod.namespace)}/{pod.name}"


def _at(pod: PodInfo) -> tuple[str, str]:
    return pod.namespace, pod.name
