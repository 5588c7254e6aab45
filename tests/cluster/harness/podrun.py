"""One pod on the test kubelet: its containers as process groups, probes, restarts and status.

A `PodRun` prepares the pod's volumes, runs init containers in order, then supervises each
container: start it (a new session, so the whole process group can be signalled), probe it,
restart it per restartPolicy with a short exponential backoff, and publish the pod status
(phase, podIP, container statuses, conditions) through the status subresource. `terminate()` is
the kubelet's side of a graceful deletion: SIGTERM, wait the grace period (capped), SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.cluster import probes
from tests.cluster.podspec import (
    ContainerConfigError,
    ImageSpec,
    ImageTable,
    Lookup,
    Rewriter,
    container_argv,
    container_env,
    field_ref,
    image_paths,
    resolve_program,
)

JsonDict = dict[str, Any]


def _now() -> str:
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
            "ready": self.ready and running,
            "started": running,
            "restartCount": self.restarts,
            "state": self.state,
            "lastState": self.last_state,
        }


class PodRun:
    def __init__(
        self,
        pod: JsonDict,
        ip: str,
        workdir: Path,
        settings: PodSettings,
        lookup: Lookup,
        write_status: Callable[[JsonDict], Awaitable[None]],
    ) -> None:
        self.pod = pod
        self.ip = ip
        self.workdir = workdir
        self.settings = settings
        self._lookup = lookup
        self._write_status = write_status
        spec = pod["spec"]
        self.inits = [ContainerRun(c, init=True) for c in spec.get("initContainers") or ()]
        self.mains = [ContainerRun(c) for c in spec.get("containers") or ()]
        self.volumes: dict[str, Path] = {}
        self.init_failed = False
        self.initialized = not self.inits
        self.terminating = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dirty = asyncio.Event()
        self._conditions: dict[str, tuple[str, str]] = {}
        self._start_time = _now()

    @property
    def key(self) -> tuple[str, str]:
        return (self.pod["metadata"]["namespace"], self.pod["metadata"]["name"])

    @property
    def restart_policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy", "Always"))

    def log_path(self, container: str) -> Path:
        return self.workdir / "logs" / f"{container}.log"

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def changed(self) -> None:
        self._dirty.set()

    def start(self) -> None:
        self._spawn(self._run())

    async def _run(self) -> None:
        self._spawn(self._status_writer())
        try:
            self._prepare_volumes()
        except ContainerConfigError as exc:
            for container in self.inits + self.mains:
                container.state = {
                    "waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}
                }
            self.changed()
            return
        self.changed()
        for container in self.inits:
            if not await self._run_init(container):
                self.init_failed = True
                self.changed()
                return
        self.initialized = True
        for container in self.mains:
            self._spawn(self._supervise(container))
        self.changed()

    # --- volumes and processes ----------------------------------------------------------------

    def _prepare_volumes(self) -> None:
        ns = self.key[0]
        for volume in self.pod["spec"].get("volumes") or ():
            path = self.workdir / "volumes" / volume["name"]
            path.mkdir(parents=True, exist_ok=True)
            self.volumes[volume["name"]] = path
            source = volume.get("configMap") or volume.get("secret")
            if source is not None:
                kind = "ConfigMap" if "configMap" in volume else "Secret"
                name = source.get("name") or source.get("secretName", "")
                data = self._lookup(kind, ns, name) or {}
                items = source.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    if item["key"] in data:
                        target = path / item["path"]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_text(data[item["key"]])
            elif "downwardAPI" in volume:
                # Files from fieldRefs (metadata.annotations['k'] and the like), written once.
                for item in volume["downwardAPI"].get("items") or ():
                    target = path / item["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(field_ref(self.pod, item["fieldRef"]["fieldPath"]))
            elif "emptyDir" not in volume:
                kinds = sorted(set(volume) - {"name"})
                raise ContainerConfigError(f"volume {volume['name']}: {kinds} is not emulated")

    def _mounts(self, container: JsonDict) -> dict[str, Path]:
        mounts = {}
        for mount in container.get("volumeMounts") or ():
            if mount["name"] not in self.volumes:
                raise ContainerConfigError(f"volume {mount['name']!r} not found")
            mounts[mount["mountPath"]] = self.volumes[mount["name"]] / mount.get("subPath", "")
        return mounts

    def _command(self, spec: JsonDict) -> tuple[list[str], dict[str, str], str, ImageSpec]:
        image = self.settings.images.resolve(spec.get("image", ""))
        pod = {**self.pod, "status": {**self.pod.get("status", {}), "podIP": self.ip}}
        env = container_env(pod, spec, image, self._lookup)
        mounts = self._mounts(spec)
        rewrite = Rewriter(mounts, self.ip, self.settings.rewrite_loopback)
        argv = image_paths([rewrite(a) for a in container_argv(spec, image, env)], image)
        argv[0] = resolve_program(argv[0], image, mounts)
        env = {**{k: rewrite(v) for k, v in env.items()}, **self.settings.base_env}
        env["HOSTNAME"] = self.key[1]
        cwd = rewrite(spec["workingDir"]) if spec.get("workingDir") else str(self.workdir)
        return argv, env, cwd, image

    async def _start(self, container: ContainerRun) -> asyncio.subprocess.Process:
        argv, env, cwd, _ = self._command(container.spec)
        log = self.log_path(container.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group, signalled as a whole
            )
        container.proc = proc
        container.pids.append(proc.pid)
        with contextlib.suppress(psutil.Error):
            self.settings.spawned.append((proc.pid, psutil.Process(proc.pid).create_time()))
        container.state = {"running": {"startedAt": _now()}}
        return proc

    async def _exec_probe(self, container: ContainerRun, argv: list[str], limit: float) -> bool:
        _, env, cwd, image = self._command(container.spec)
        mounts = self._mounts(container.spec)
        rewrite = Rewriter(mounts, self.ip, self.settings.rewrite_loopback)
        argv = [rewrite(a) for a in argv]
        argv[0] = resolve_program(argv[0], image, mounts)
        return await probes.run_exec(argv, env, cwd, limit)

    def _record_exit(self, container: ContainerRun, code: int) -> None:
        started = container.state.get("running", {}).get("startedAt", _now())
        terminated: JsonDict = {
            "exitCode": code if code >= 0 else 128 - code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": _now(),
        }
        if code < 0:
            terminated["signal"] = -code
        container.state = {"terminated": terminated}
        container.ready = False

    async def _run_init(self, container: ContainerRun) -> bool:
        delay, cap = self.settings.backoff
        while True:
            code: int | None = None
            try:
                code = await (await self._start(container)).wait()
            except ContainerConfigError as exc:
                container.state = {
                    "waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}
                }
            else:
                self._record_exit(container, code)
            self.changed()
            if code == 0:
                return True
            if code is not None and self.restart_policy == "Never":
                return False
            if code is not None:
                container.restarts += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, cap)

    async def _supervise(self, container: ContainerRun) -> None:
        delay, cap = self.settings.backoff
        while True:
            try:
                proc = await self._start(container)
            except ContainerConfigError as exc:
                container.state = {
                    "waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}
                }
                self.changed()
                await asyncio.sleep(delay)
                delay = min(delay * 2, cap)
                continue
            probe_tasks = self._start_probes(container, proc)
            self.changed()
            code = await proc.wait()
            for task in probe_tasks:
                task.cancel()
            self._record_exit(container, code)
            policy = self.restart_policy
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                container.final = True
                self.changed()
                return
            container.last_state = container.state
            container.state = {"waiting": {"reason": "CrashLoopBackOff"}}
            container.restarts += 1
            self.changed()
            await asyncio.sleep(delay)
            delay = min(delay * 2, cap)

    def _start_probes(
        self, container: ContainerRun, proc: asyncio.subprocess.Process
    ) -> list[asyncio.Task[Any]]:
        spec = container.spec
        tasks = []

        def check(probe: JsonDict) -> Callable[[], Awaitable[bool]]:
            async def once() -> bool:
                return await probes.probe_once(
                    probe, self.ip, spec, lambda argv, t: self._exec_probe(container, argv, t)
                )

            return once

        def on_ready(ok: bool) -> None:
            if container.ready != ok:
                container.ready = ok
                self.changed()

        def on_alive(ok: bool) -> None:
            if not ok:  # a failed liveness probe kills the container; the supervisor restarts it
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

        if spec.get("readinessProbe"):
            probe = spec["readinessProbe"]
            tasks.append(
                self._spawn(probes.run_probe(probe, self.settings.timing, check(probe), on_ready))
            )
        else:
            container.ready = True
        if spec.get("livenessProbe"):
            probe = spec["livenessProbe"]
            tasks.append(
                self._spawn(probes.run_probe(probe, self.settings.timing, check(probe), on_alive))
            )
        return tasks

    # --- status -------------------------------------------------------------------------------

    def phase(self) -> str:
        if self.init_failed:
            return "Failed"
        if not self.initialized or not self.mains:
            return "Pending"
        if all(c.final for c in self.mains):
            codes = [c.state["terminated"]["exitCode"] for c in self.mains]
            return "Succeeded" if all(code == 0 for code in codes) else "Failed"
        if any(c.pids for c in self.mains):
            return "Running"
        return "Pending"

    def _condition(self, kind: str, ok: bool) -> JsonDict:
        value = "True" if ok else "False"
        previous = self._conditions.get(kind)
        if previous is None or previous[0] != value:
            self._conditions[kind] = (value, _now())
        return {"type": kind, "status": value, "lastTransitionTime": self._conditions[kind][1]}

    def status(self) -> JsonDict:
        phase = self.phase()
        ready = phase == "Running" and all(c.ready and "running" in c.state for c in self.mains)
        status: JsonDict = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self._start_time,
            "qosClass": "BestEffort",
            "conditions": [
                self._condition("PodScheduled", True),
                self._condition("Initialized", self.initialized),
                self._condition("ContainersReady", ready),
                self._condition("Ready", ready),
            ],
            "containerStatuses": [c.status() for c in self.mains],
        }
        if self.inits:
            status["initContainerStatuses"] = [c.status() for c in self.inits]
        return status

    async def _status_writer(self) -> None:
        """Coalesce status changes into one merge patch at a time, in order."""
        last: JsonDict | None = None
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if self.terminating:
                return
            status = self.status()
            if status != last:
                await self._write_status(status)
                last = status

    # --- termination --------------------------------------------------------------------------

    async def terminate(self, grace: float) -> None:
        """Stop supervising, SIGTERM every process group, SIGKILL what outlives the grace."""
        self.terminating = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        procs = [c.proc for c in self.inits + self.mains if c.proc and c.proc.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        waits = [asyncio.ensure_future(p.wait()) for p in procs]
        if waits:
            await asyncio.wait(waits, timeout=min(grace, self.settings.max_grace))
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the group: children outlive a leader
            await asyncio.gather(*waits)
        for proc in [c.proc for c in self.inits + self.mains if c.proc]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
