"""The process kubelet: a real Node of the test cluster whose pods run as local processes.

It authenticates with the node's client certificate (`system:node:NAME`, through
`nodeclient.NodeClient`), so the Node authorizer and NodeRestriction limit it as they limit a
kubelet. It registers its Node and keeps the heartbeat Lease (`node.NodeAgent`); the real
scheduler binds pods to it; it watches the pods bound to it (fieldSelector spec.nodeName),
fetches what they refer to (ConfigMaps, Secrets, and ServiceAccount tokens from the TokenRequest
API), gives each pod its own loopback address 127.0.X.Y (Linux routes all of 127/8 to lo, so
container ports never collide between pods), runs it (`podrun.PodRun`), and on a graceful
deletion kills the processes and confirms with a DELETE of grace 0, as a real kubelet does. It
runs in its own thread and event loop.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import logging
import os
import random
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.cluster.harness import volumes
from tests.cluster.harness.node import NodeAgent
from tests.cluster.harness.nodeclient import NodeClient
from tests.cluster.harness.podrun import PodRun
from tests.cluster.harness.podspec import VENV_BIN, ImageTable
from tests.cluster.harness.podstate import PodSettings
from tests.cluster.harness.probes import ProbeTiming

logger = logging.getLogger(__name__)
JsonDict = dict[str, Any]
_ALLOCATED: set[str] = set()  # pod IPs in use by every kubelet of this process
_ALLOCATED_LOCK = threading.Lock()


def _ports_free(ip: str, ports: list[int]) -> bool:
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind((ip, port))
            except OSError:
                return False
    return True


def first_subnet() -> int:
    """Where this kubelet starts handing out pod IPs: a random 127.0.X.0/24 of 2..250, so
    sessions spread over them; under pytest-xdist each worker (its own cluster and kubelet)
    draws from its own slice, so two workers' pods never share an address."""
    worker, workers = (
        os.environ.get("PYTEST_XDIST_WORKER", ""),
        os.environ.get("PYTEST_XDIST_WORKER_COUNT", ""),
    )
    if not (worker.startswith("gw") and worker[2:].isdigit() and workers.isdigit()):
        return random.randint(2, 250)
    size = 249 // max(1, int(workers))
    low = 2 + (int(worker[2:]) % max(1, int(workers))) * size
    return random.randint(low, low + size - 1)


class Kubelet:
    def __init__(
        self,
        api_url: str,
        workdir: Path,
        *,
        ssl_context: ssl.SSLContext,
        images: ImageTable | None = None,
        node_name: str = "harness-node",
        timing: ProbeTiming | None = None,
        backoff: tuple[float, float] = (0.1, 1.0),
        max_grace: float = 5.0,
        rewrite_loopback: bool = True,
    ) -> None:
        self.api_url = api_url
        self.workdir = workdir
        self.node_name = node_name
        self.images = images or ImageTable.default()
        port = api_url.rsplit(":", 1)[1]
        base_env = {
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(workdir),
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",  # what the kubelet injects; the port is real
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
        }
        self.settings = PodSettings(
            self.images,
            base_env,
            timing or ProbeTiming(),
            backoff,
            max_grace,
            rewrite_loopback,
            api_url=api_url,
            event=self._event,
        )
        self.client = NodeClient(api_url, ssl_context, node_name)
        self._call = self.client.call
        self.node = NodeAgent(node_name, self.client.call)
        self.pods: dict[tuple[str, str], PodRun] = {}
        self._locks: collections.defaultdict[tuple[str, str], asyncio.Lock] = (
            collections.defaultdict(asyncio.Lock)
        )
        self.errors: list[BaseException] = []
        self.subnet = first_subnet()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="process-kubelet", daemon=True
        )
        self._main: concurrent.futures.Future[None] | None = None
        self._registered = threading.Event()
        self._handling: set[asyncio.Task[Any]] = set()

    # --- lifecycle (called from the test thread) ----------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Start the loop; returns once the Node is registered (raises what stopped it)."""
        self._thread.start()
        self._main = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        deadline = time.monotonic() + timeout
        while not self._registered.wait(0.1):
            if self._main.done():
                self._main.result()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the kubelet did not register within {timeout:g} s")

    def stop(self) -> None:
        """Kill every pod's processes (without deleting the pods) and stop the loop."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Kubelet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def spawned_pids(self) -> list[tuple[int, float]]:
        return list(self.settings.spawned)

    def log(self, namespace: str, name: str, container: str) -> str:
        """A container's stdout and stderr so far (all restarts), as `kubectl logs` would show."""
        run = self.pods.get((namespace, name))
        path = run.log_path(container) if run else None
        if path is None:  # the pod is gone: its folder stays until the session ends
            found = sorted(self.workdir.glob(f"{namespace}_{name}_*/logs/{container}.log"))
            path = found[-1] if found else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def call_soon(self, fn: Any) -> Any:
        """Run `fn()` on the kubelet's loop and return its result (for tests)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def pause_heartbeat(self) -> None:
        """Stop renewing the node Lease and status, as a dead node: the real node-lifecycle
        controller marks the Node NotReady (Unknown) and its pods not Ready after its grace."""
        self.node.pause()

    def resume_heartbeat(self) -> None:
        """Beat again: the Lease and the node status (Ready) at once."""
        self.node.resume()

    def resync_pods(self) -> None:
        """Write every pod's status again (once the Node is Ready: before, the node-lifecycle
        controller marks them not Ready again on its next pass)."""

        def resync() -> None:
            for run in list(self.pods.values()):
                run.resync()

        self.call_soon(resync)

    # --- the API ------------------------------------------------------------------------------

    def _event(self, pod: JsonDict, kind: str, reason: str, message: str) -> None:
        self._spawn_task(self.client.event(pod, kind, reason, message))

    # --- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        self.client.open()
        try:
            await self.node.register()
            self._registered.set()
            self._spawn_task(self.node.heartbeat())
            await self._sync_forever()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.errors.append(exc)
            logger.exception("process kubelet crashed")
            raise

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _shutdown(self) -> None:
        if self._main is not None:
            self._main.cancel()
        for task in list(self._handling):
            task.cancel()
        await asyncio.gather(*self._handling, return_exceptions=True)
        await asyncio.gather(
            *(self._stop_pod(run, delete=False) for run in list(self.pods.values()))
        )
        await self.client.close()

    async def _sync_forever(self) -> None:
        """List, then watch from the list's resourceVersion; relist on 410, rewatch on EOF."""
        selector = f"spec.nodeName={self.node_name}"
        rv: str | None = None
        while True:
            if rv is None:
                status, listing = await self._call("GET", f"/api/v1/pods?fieldSelector={selector}")
                if status != 200:
                    raise RuntimeError(f"cannot list pods: {status} {listing}")
                rv = listing["metadata"]["resourceVersion"]
                seen = {
                    (p["metadata"]["namespace"], p["metadata"]["name"]) for p in listing["items"]
                }
                for key in set(self.pods) - seen:
                    self._handle(None, key)
                for pod in listing["items"]:
                    self._handle(pod, None)
            params = {
                "watch": "true",
                "resourceVersion": rv,
                "fieldSelector": selector,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "300",
            }
            timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
            async with self.client.session.get(
                self.api_url + "/api/v1/pods", params=params, timeout=timeout
            ) as response:
                if response.status == 410:
                    rv = None
                    continue
                if response.status != 200:
                    raise RuntimeError(f"cannot watch pods: {response.status}")
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            rv = None  # 410 Gone: too old; start over with a fresh list
                            break
                        rv = obj["metadata"]["resourceVersion"]
                        if event["type"] == "BOOKMARK":
                            continue
                        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
                        self._handle(None if event["type"] == "DELETED" else obj, key)
                    if rv is None:
                        break

    def _handle(self, pod: JsonDict | None, key: tuple[str, str] | None) -> None:
        task = asyncio.ensure_future(self._on_pod(pod, key))
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _on_pod(self, pod: JsonDict | None, key: tuple[str, str] | None) -> None:
        if key is None and pod is not None:
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        assert key is not None
        try:
            async with self._locks[key]:  # one event of a pod at a time, in order
                await self._reconcile(pod, key)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.errors.append(exc)
            logger.exception("process kubelet failed to handle a pod")

    async def _reconcile(self, pod: JsonDict | None, key: tuple[str, str]) -> None:
        run = self.pods.get(key)
        if pod is None or (
            run is not None and run.pod["metadata"]["uid"] != pod["metadata"]["uid"]
        ):
            if run is not None:  # removed behind our back (or replaced): stop at once
                await self._stop_pod(run, delete=False, grace=0)
            if pod is None:
                return
            run = None
        if pod["spec"].get("nodeName") != self.node_name:
            return
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            if run is not None and not run.terminating:
                run.pod = pod
                self._event(pod, "Normal", "Killing", "Stopping the pod's processes")
                await self._stop_pod(
                    run, delete=True, grace=float(meta.get("deletionGracePeriodSeconds") or 0)
                )
            elif run is None:
                await self._confirm_deletion(pod)
            return
        if run is not None:
            run.pod = pod
            return
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        await self._start_pod(pod)

    async def _start_pod(self, pod: JsonDict) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        refs: dict[tuple[str, str, str], dict[str, str | bytes]] = {}
        optional: dict[tuple[str, str], bool] = {}
        for kind, ref_name, is_optional in volumes.referenced(pod):
            optional[(kind, ref_name)] = optional.get((kind, ref_name), True) and is_optional
        for (kind, ref_name), is_optional in optional.items():
            data = await self.client.fetch(kind, ns, ref_name, is_optional)
            if data is not None:
                refs[(kind, ns, ref_name)] = data
        issued = {key: await self.client.token(pod, *key) for key in sorted(volumes.tokens(pod))}
        if (ns, name) in self.pods:
            return  # another event for the same pod got here first
        ports = [
            int(p["containerPort"])
            for c in pod["spec"].get("containers") or ()
            for p in c.get("ports") or ()
        ]
        ip = self._allocate_ip(ports)
        workdir = self.workdir / f"{ns}_{name}_{pod['metadata']['uid'][:8]}"
        run = PodRun(
            pod,
            ip,
            workdir,
            self.settings,
            lambda k, n, r: refs.get((k, n, r)),
            self._status_writer(ns, name),
            issued,
        )
        self.pods[(ns, name)] = run
        run.start()

    def _status_writer(self, ns: str, name: str) -> Any:
        async def write(status: JsonDict) -> None:
            code, body = await self._call(
                "PATCH",
                f"/api/v1/namespaces/{ns}/pods/{name}/status",
                {"status": status},
                "application/merge-patch+json",
            )
            if code not in (200, 404):  # a refused status is a bug of this kubelet: fail tests
                self.errors.append(RuntimeError(f"status patch of {ns}/{name}: {code} {body}"))

        return write

    async def _stop_pod(self, run: PodRun, *, delete: bool, grace: float = 0) -> None:
        await run.terminate(grace)
        with _ALLOCATED_LOCK:
            _ALLOCATED.discard(run.ip)
        if delete:
            await self._confirm_deletion(run.pod)
        if self.pods.get(run.key) is run:
            del self.pods[run.key]

    async def _confirm_deletion(self, pod: JsonDict) -> None:
        """The kubelet's final DELETE (grace 0, uid precondition) once the containers are gone."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        options = {"gracePeriodSeconds": 0, "preconditions": {"uid": pod["metadata"]["uid"]}}
        try:
            await self._call("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}", options)
        except aiohttp.ClientError as exc:
            logger.warning("final deletion of %s/%s: %s", ns, name, exc)

    def _allocate_ip(self, ports: list[int]) -> str:
        with _ALLOCATED_LOCK:
            for offset in range(250 * 253):
                subnet = 2 + (self.subnet - 2 + offset // 253) % 249
                ip = f"127.0.{subnet}.{2 + offset % 253}"
                if ip not in _ALLOCATED and _ports_free(ip, ports):
                    _ALLOCATED.add(ip)
                    return ip
        raise RuntimeError("no free pod IP left in 127.0.0.0/16")
