"""What the process kubelet keeps per node and per container: settings, and a container's state
as the pod status reports it (state, lastState, restarts, ready, started)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.cluster.harness import probes
from tests.cluster.harness.podspec import ImageTable

JsonDict = dict[str, Any]


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PodSettings:
    """The kubelet-wide knobs a pod run needs."""

    images: ImageTable
    base_env: dict[str, str]
    timing: probes.ProbeTiming = field(default_factory=probes.ProbeTiming)
    backoff: tuple[float, float] = (0.1, 1.0)  # first delay, cap (real kubelet: 10 s, 5 min)
    max_grace: float = 5.0  # cap on terminationGracePeriodSeconds, to bound test time
    rewrite_loopback: bool = True
    api_url: str = ""  # what the in-pod kubeconfig points at
    # Images already "pulled" on this node (a future while the simulated pull runs).
    pulled: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    # (pod, type, reason, message) -> a core/v1 Event, posted by the kubelet.
    event: Callable[[JsonDict, str, str, str], None] = lambda *_: None
    # Every process started, as (pid, create_time), so a reused PID is not taken for a leak.
    spawned: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class ContainerRun:
    spec: JsonDict
    init: bool = False
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    state: JsonDict = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: JsonDict = field(default_factory=dict)
    ready: bool = False
    final: bool = False  # exited and will not be restarted
    started: bool = False  # its startup probe (if any) succeeded
    pids: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self) -> JsonDict:
        running = "running" in self.state
        return {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "containerID": f"process://{self.proc.pid}" if self.proc else "",
            "ready": self.ready and running and self.started,
            "started": running and self.started,
            "restartCount": self.restarts,
            "state": self.state,
            "lastState": self.last_state,
        }
