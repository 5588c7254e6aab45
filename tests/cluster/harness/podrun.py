"""One pod on the process kubelet: its containers as process groups, probes, restarts, status.

A `PodRun` prepares the pod's volumes (`volumes.prepare`), "pulls" each image once per node (an
optional simulated delay), runs init containers in order, then starts the containers in order
(each one's image pulled before it starts and before the next is pulled, as the kubelet does),
supervising each: start
it (a new session, so the whole process group can be signalled), probe it, restart it per
restartPolicy with a short exponential backoff, and publish the pod status (phase, podIP,
container statuses, conditions) through the status subresource. An emptyDir that outgrows its
sizeLimit evicts the pod, as the kubelet's eviction manager does. `terminate()` is the kubelet's
side of a graceful deletion: SIGTERM, wait the grace period (capped), SIGKILL.

Processes cannot see the in-cluster paths (/var/run/secrets/...), so each pod gets a kubeconfig
(`KUBECONFIG`) that points at the apiserver and reads the pod's projected token and CA files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import yaml

from tests.cluster.harness import probes, volumes
from tests.cluster.harness.podspec import (
    ContainerConfigError,
    ImageSpec,
    Lookup,
    Rewriter,
    container_argv,
    container_env,
    image_paths,
    resolve_program,
)
from tests.cluster.harness.podstate import ContainerRun, PodSettings, now

JsonDict = dict[str, Any]


class PodRun:
    def __init__(
        self,
        pod: JsonDict,
        ip: str,
        workdir: Path,
        settings: PodSettings,
        lookup: Lookup,
        write_status: Callable[[JsonDict], Awaitable[None]],
        issued: dict[volumes.TokenKey, str] | None = None,
    ) -> None:
        self.pod = pod
        self.ip = ip
        self.workdir = workdir
        self.settings = settings
        self._lookup = lookup
        self._write_status = write_status
        self._issued = issued or {}
        spec = pod["spec"]
        self.inits = [ContainerRun(c, init=True) for c in spec.get("initContainers") or ()]
        self.mains = [ContainerRun(c) for c in spec.get("containers") or ()]
        self.volumes: dict[str, Path] = {}
        self.evicted: str | None = None  # the eviction message
        self.init_failed = False
        self.initialized = not self.inits
        self.terminating = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dirty = asyncio.Event()
        self._resync = False  # write the status even if unchanged (another party rewrote it)
        self._conditions: dict[str, tuple[str, str]] = {}
        self._start_time = now()

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
            # As the kubelet's SyncPod: containers in order, each image pulled before the
            # container starts and before the next one is looked at.
            await self._pull(container)
            self._spawn(self._supervise(container))
        self.changed()

    # --- volumes and processes ----------------------------------------------------------------

    def _prepare_volumes(self) -> None:
        prepared = volumes.prepare(self.pod, self.workdir / "volumes", self._lookup, self._issued)
        self.volumes = prepared.paths
        if prepared.size_limits:
            self._spawn(self._watch_size_limits(prepared.size_limits))
        self._write_kubeconfig()

    def _write_kubeconfig(self) -> None:
        """The pod's way in: the apiserver, its CA and token files from the projected volume."""
        mounted = {
            m["mountPath"].rstrip("/"): m["name"]
            for c in self.inits + self.mains
            for m in c.spec.get("volumeMounts") or ()
        }
        folder = self.volumes.get(mounted.get(volumes.SERVICE_ACCOUNT_DIR, ""))
        config = volumes.pod_kubeconfig(self.settings.api_url, folder, self.key[0])
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(yaml.safe_dump(config))

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    async def _watch_size_limits(self, limits: dict[str, float]) -> None:
        while True:
            for name, limit in limits.items():
                used = await asyncio.to_thread(volumes.usage, self.volumes[name])
                if used > limit:
                    self.evicted = (
                        f'Usage of EmptyDir volume "{name}" exceeds the limit "{limit:g}".'
                    )
                    self.settings.event(self.pod, "Warning", "Evicted", self.evicted)
                    self._spawn(self._evict())
                    return
            await asyncio.sleep(0.5)

    async def _evict(self) -> None:
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await self._kill_all(grace=0)
        for container in self.mains:
            if "running" in container.state:
                self._record_exit(container, 137)
        await self._write_status(self.status())

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
        env["KUBECONFIG"] = str(self.kubeconfig)
        cwd = rewrite(spec["workingDir"]) if spec.get("workingDir") else str(self.workdir)
        return argv, env, cwd, image

    async def _pull(self, container: ContainerRun) -> None:
        """Each image is "pulled" once per node; a configured delay simulates a cold node."""
        image = str(container.spec.get("image", ""))
        pulled = self.settings.pulled.get(image)
        if pulled is None:
            delay = self.settings.images.pull_delay(image)
            pulled = self.settings.pulled[image] = asyncio.get_running_loop().create_future()
            if delay > 0:
                self.settings.event(self.pod, "Normal", "Pulling", f'Pulling image "{image}"')
                await asyncio.sleep(delay)  # the simulated pull itself, not a wait in a test
                self.settings.event(
                    self.pod,
                    "Normal",
                    "Pulled",
                    f'Successfully pulled image "{image}" in {delay:g}s',
                )
            pulled.set_result(None)
        await asyncio.shield(pulled)

    async def _start(self, container: ContainerRun) -> asyncio.subprocess.Process:
        await self._pull(container)
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
        container.state = {"running": {"startedAt": now()}}
        return proc

    async def _exec_probe(self, container: ContainerRun, argv: list[str], limit: float) -> bool:
        _, env, cwd, image = self._command(container.spec)
        mounts = self._mounts(container.spec)
        rewrite = Rewriter(mounts, self.ip, self.settings.rewrite_loopback)
        argv = [rewrite(a) for a in argv]
        argv[0] = resolve_program(argv[0], image, mounts)
        return await probes.run_exec(argv, env, cwd, limit)

    def _record_exit(self, container: ContainerRun, code: int) -> None:
        started = container.state.get("running", {}).get("startedAt", now())
        terminated: JsonDict = {
            "exitCode": code if code >= 0 else 128 - code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": now(),
        }
        if code < 0:
            terminated["signal"] = -code
        container.state = {"terminated": terminated}
        container.ready = container.started = False

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
        return [self._spawn(self._probe(container, proc))]

    async def _probe(self, container: ContainerRun, proc: asyncio.subprocess.Process) -> None:
        def check(probe: JsonDict) -> Callable[[], Awaitable[bool]]:
            async def once() -> bool:
                return await probes.probe_once(
                    probe,
                    self.ip,
                    container.spec,
                    lambda argv, t: self._exec_probe(container, argv, t),
                )

            return once

        def kill() -> None:  # the supervisor sees the exit and applies the restart policy
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        def on_ready(ok: bool) -> None:
            if container.ready != ok:
                container.ready = ok
                self.changed()

        def on_started(ok: bool) -> None:
            container.started = ok
            self.changed()

        await probes.run_container_probes(
            container.spec, self.settings.timing, check, on_started, on_ready, kill
        )

    # --- status -------------------------------------------------------------------------------

    def phase(self) -> str:
        if self.init_failed or self.evicted:
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
            self._conditions[kind] = (value, now())
        return {"type": kind, "status": value, "lastTransitionTime": self._conditions[kind][1]}

    def status(self) -> JsonDict:
        phase = self.phase()
        ready = phase == "Running" and all(
            c.ready and c.started and "running" in c.state for c in self.mains
        )
        status: JsonDict = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self._start_time,
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
        if self.evicted:
            status |= {"reason": "Evicted", "message": self.evicted}
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
            if status != last or self._resync:
                self._resync = False
                await self._write_status(status)
                last = status

    def resync(self) -> None:
        """Write the status again, as the kubelet's status manager does when the apiserver's
        copy differs (the node-lifecycle controller marked the pod not Ready). Loop thread."""
        self._resync = True
        self._dirty.set()

    # --- termination --------------------------------------------------------------------------

    async def terminate(self, grace: float) -> None:
        """Stop supervising, SIGTERM every process group, SIGKILL what outlives the grace."""
        self.terminating = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._kill_all(grace)

    async def _kill_all(self, grace: float) -> None:
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
