"""Retiring a warm pod before deleting it: the operator's side of the agent's lock.

A gateway takes a `warm` pod by specializing its agent and writes the claim's labels only
afterwards, once its first call is answered (`gateway/cluster/provider.py`), so a pod the keeper
judged free may have been taken in between. Before deleting a `warm` pod the keeper asks its agent
to retire (stop, only while never specialized). The agent takes one of the two, whichever comes
first: a 409 means a gateway took the pod, which is then left alone (its claim label follows),
unless it is still unlabelled a claim lease later: its gateway died before writing it, and the
pod is deleted as an unrenewed claim would be. An agent that does not answer within the timeout
is deleted, as before: it cannot be taken either, unless only the operator's path to it is cut
(the one case this does not cover). A pod that is not serving (not Ready, or on a Node that is
not) is deleted without asking: no gateway takes such a pod.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import aiohttp

from kubelambda.addresses import http_url
from kubelambda.kube import contract as c
from kubelambda.kube.agentauth import pod_token
from kubelambda.kube.contract import PodInfo
from kubelambda.runtime.errors import EnvironmentStateError
from kubelambda.runtime.remote import AgentError, RemoteEnvironment

log = logging.getLogger(__name__)


def needs_retire(pod: PodInfo) -> bool:
    """Only a warm pod a gateway may pick can be taken unlabelled."""
    return pod.state == "warm" and pod.ip is not None and pod.phase == "Running" and pod.serving


class Retirer:
    """Asks agents to retire; one HTTP session for all of them."""

    def __init__(
        self,
        agent_key: bytes | None,
        *,
        lease: float = 60.0,
        timeout: float = 1.0,
        port: int = c.AGENT_PORT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent_key = agent_key
        self.lease = lease
        self.timeout = timeout
        self.port = port
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._refused: dict[str, float] = {}  # pod name -> when its agent first refused

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def may_delete(self, pod: PodInfo) -> bool:
        """Whether `pod` may be deleted: retired now, or nothing to retire."""
        if not needs_retire(pod):
            return True
        assert pod.ip is not None
        token = pod_token(self.agent_key, pod.agent_nonce)
        agent = RemoteEnvironment(http_url(pod.ip, self.port), session=self._client(), token=token)
        now = self.clock()
        self._refused = {n: t for n, t in self._refused.items() if now - t < 2 * self.lease}
        try:
            await agent.retire()
        except EnvironmentStateError:
            since = self._refused.setdefault(pod.name, now)
            if now - since < self.lease:
                log.info(
                    "pod %s/%s was taken by a gateway before its deletion", pod.namespace, pod.name
                )
                return False
            log.warning(
                "pod %s/%s was taken but not claimed within the lease (%g s): deleted",
                pod.namespace,
                pod.name,
                self.lease,
            )
        except (aiohttp.ClientError, TimeoutError, AgentError) as exc:
            log.info(
                "pod %s/%s: its agent did not answer the retire (%s)", pod.namespace, pod.name, exc
            )
        finally:
            await agent.close()
        self._refused.pop(pod.name, None)
        return True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
