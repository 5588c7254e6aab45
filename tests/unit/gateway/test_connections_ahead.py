"""ConnectionsAhead: which warm pods get connections opened ahead, handed over at a take,
refreshed before the pool idles them out, and closed when their pods leave the pool."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from kubelambda.gateway.cluster.ahead import REFRESH, ConnectionsAhead
from kubelambda.kube.contract import PodInfo


class FakeRemote:
    def __init__(self, pod: PodInfo, state: str = "warm") -> None:
        self.pod = pod
        self.state = state
        self.channel_opened = False
        self.refreshes = 0
        self.closed = False

    def connect_ahead(self) -> None:
        self.channel_opened = True

    async def refresh(self) -> dict[str, Any]:
        self.refreshes += 1
        if self.state == "unreachable":
            raise OSError("connection refused")
        return {"state": self.state}

    async def close(self) -> None:
        self.closed = True


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def warm(name: str, **changes: Any) -> PodInfo:
    pod = PodInfo(
        name=name,
        namespace="team",
        pool="generic",
        runtime="python3.12",
        state="warm",
        shape="512",
        created=0.0,
        ready=True,
        phase="Running",
        ip="10.0.0.1",
        agent_nonce=f"nonce-{name}",
    )
    return replace(pod, **changes)


def ahead(
    states: dict[str, str] | None = None, limit: int = 64
) -> tuple[ConnectionsAhead, dict[str, FakeRemote], Clock]:
    made: dict[str, FakeRemote] = {}

    def connect(pod: PodInfo) -> Any:
        made[pod.name] = FakeRemote(pod, (states or {}).get(pod.name, "warm"))
        return made[pod.name]

    clock = Clock()
    return ConnectionsAhead(connect, limit=limit, clock=clock), made, clock


async def settle(connections: ConnectionsAhead) -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_only_takeable_pods_get_connections_and_their_channel_and_http_are_opened() -> None:
    connections, made, _ = ahead()
    pods = [
        warm("a"),
        warm("claimed", state="claimed"),
        warm("unready", ready=False),
        warm("pending", phase="Pending"),
        warm("no-ip", ip=None),
        warm("going", deleting=True),
        warm("dead-node", node_ready=False),
        warm("ours"),
    ]
    connections.sync(pods, skip={"ours"})
    await settle(connections)
    assert set(made) == {"a"}
    assert made["a"].channel_opened and made["a"].refreshes == 1
    assert len(connections) == 1


async def test_a_take_hands_the_client_over_once() -> None:
    connections, made, _ = ahead()
    connections.sync([warm("a")])
    await settle(connections)
    taken = connections.take(warm("a"))
    assert taken is made["a"] and not made["a"].closed
    assert connections.take(warm("a")) is None
    # A new pod of the same name (a new nonce) is another agent: nothing opened for it.
    connections.sync([warm("b")])
    assert connections.take(warm("b", agent_nonce="other")) is None


async def test_pods_that_leave_the_pool_have_their_connections_closed() -> None:
    connections, made, _ = ahead()
    connections.sync([warm("a"), warm("b")])
    await settle(connections)
    connections.sync([warm("a", state="claimed"), warm("b")])  # another replica took a
    await settle(connections)
    assert made["a"].closed and not made["b"].closed
    connections.sync([warm("b")], skip={"b"})  # this replica is taking b
    await settle(connections)
    assert made["b"].closed and len(connections) == 0


async def test_an_agent_that_is_not_warm_or_does_not_answer_is_forgotten() -> None:
    connections, made, _ = ahead({"busy": "ready", "gone": "unreachable"})
    connections.sync([warm("busy"), warm("gone"), warm("fine")])
    await settle(connections)
    assert made["busy"].closed and made["gone"].closed and not made["fine"].closed
    assert connections.take(warm("busy")) is None and connections.take(warm("gone")) is None
    assert connections.take(warm("fine")) is made["fine"]


async def test_connections_are_refreshed_before_the_pool_would_idle_them_out() -> None:
    connections, made, clock = ahead()
    connections.sync([warm("a")])
    await settle(connections)
    clock.now += REFRESH - 1
    connections.sync([warm("a")])
    await settle(connections)
    assert made["a"].refreshes == 1
    clock.now += 1
    connections.sync([warm("a")])
    await settle(connections)
    assert made["a"].refreshes == 2 and not made["a"].closed


async def test_at_most_limit_pods_are_connected_and_close_ends_them_all() -> None:
    connections, made, _ = ahead(limit=2)
    connections.sync([warm(name) for name in "abcd"])
    await settle(connections)
    assert len(made) == 2 and len(connections) == 2
    await connections.close()
    assert all(remote.closed for remote in made.values()) and len(connections) == 0
