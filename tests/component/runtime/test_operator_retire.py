"""The operator's retire against a real agent's control API (in-process, on loopback).

`operator/retire.py` asks a warm pod's agent to retire before the keeper deletes the pod: a pod
whose agent a gateway specialized first is left alone, until a claim lease has passed without
its labels; pods nobody can have taken (not serving, not warm) are deleted without asking, and
an agent that does not answer does not hold a deletion up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kubelambda.kube.contract import PodInfo
from kubelambda.operator.retire import Retirer, needs_retire
from kubelambda.runtime.environment import Environment
from kubelambda.runtime.errors import EnvironmentStateError
from kubelambda.runtime.remote import RemoteEnvironment
from kubelambda.runtime.spec import EnvState

from .helpers import make_spec, serve_agent

CODE = {"app.py": "def handler(event, context):\n    return 1\n"}


def warm_pod() -> PodInfo:
    return PodInfo(
        name="p",
        namespace="default",
        pool="generic",
        runtime="python3.12",
        state="warm",
        shape="s",
        created=0.0,
        ready=True,
        phase="Running",
        ip="127.0.0.1",
    )


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[tuple[Environment, str, int]]:
    """A warm agent on loopback: its environment, URL and port."""
    async with serve_agent(tmp_path / "env") as (env, url):
        port = urlsplit(url).port
        assert port is not None
        yield env, url, port


def test_only_a_warm_serving_pod_is_asked() -> None:
    pod = warm_pod()
    assert needs_retire(pod)
    for other in (
        replace(pod, state="claimed"),
        replace(pod, state="ready"),  # provisioned: its claim is a preconditioned write
        replace(pod, ready=False),
        replace(pod, node_ready=False),
        replace(pod, phase="Failed"),
        replace(pod, ip=None),
    ):
        assert not needs_retire(other), other


async def test_a_free_agent_is_retired_and_a_taken_one_kept_for_a_lease(
    agent: tuple[Environment, str, int],
) -> None:
    env, url, port = agent
    pod = warm_pod()
    now = [100.0]
    retirer = Retirer(None, lease=60.0, port=port, clock=lambda: now[0])
    gateway = RemoteEnvironment(url)
    try:
        await gateway.specialize(make_spec(CODE))  # taken, its labels not written yet
        assert not await retirer.may_delete(pod)
        now[0] += 59.0
        assert not await retirer.may_delete(pod), "still within the claim lease"
        now[0] += 2.0
        assert await retirer.may_delete(pod), "never labelled within a lease: deleted"
        assert env.state != EnvState.STOPPED  # refused retires stopped nothing
    finally:
        await gateway.close()
        await retirer.close()


async def test_a_warm_agent_retires_and_no_gateway_can_take_it(
    agent: tuple[Environment, str, int],
) -> None:
    env, url, port = agent
    pod = warm_pod()
    retirer = Retirer(None, port=port)
    try:
        assert await retirer.may_delete(pod)
        assert env.state == EnvState.STOPPED
        assert await retirer.may_delete(pod), "retired again: a deletion retried"
        late = RemoteEnvironment(url)
        with pytest.raises(EnvironmentStateError):
            await late.specialize(make_spec(CODE))
        await late.close()
    finally:
        await retirer.close()


async def test_an_agent_that_does_not_answer_does_not_hold_the_deletion() -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pod = warm_pod()
    retirer = Retirer(None, port=port, timeout=1.0)
    try:
        assert await retirer.may_delete(pod)
    finally:
        await retirer.close()
