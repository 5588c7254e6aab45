"""The test kubelet: watches Pods on the emulated apiserver and runs them as local processes.

It plays the scheduler and the kubelet of one node: it registers a Node, binds unscheduled pods
to it (POST pods/NAME/binding), gives each pod its own loopback address 127.0.X.Y (Linux routes
all of 127/8 to lo, so container ports never collide between pods), runs it (`podrun.PodRun`),
and on a graceful deletion kills the processes and confirms with a DELETE of grace 0, as the real
kubelet does. It runs in its own thread and event loop, and talks to the apiserver over HTTP only.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import json
import logging
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.cluster.podrun import PodRun, PodSettings
from tests.cluster.podspec import VENV_BIN, ImageTable
from tests.cluster.probes import ProbeTiming

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


def _referenced(pod: JsonDict) -> Iterator[tuple[str, str]]:
    """The (kind, name) of every ConfigMap and Secret the pod's env and volumes refer to."""
    spec = pod["spec"]
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for source in container.get("envFrom") or ():
            if "configMapRef" in source:
                yield "ConfigMap", source["configMapRef"]["name"]
            if "secretRef" in source:
                yield "Secret", source["secretRef"]["name"]
        for var in container.get("env") or ():
            value_from = var.get("valueFrom") or {}
            if "configMapKeyRef" in value_from:
                yield "ConfigMap", value_from["configMapKeyRef"]["name"]
            if "secretKeyRef" in value_from:
                yield "Secret", value_from["secretKeyRef"]["name"]
    for volume in spec.get("volumes") or ():
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"]
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"]


class Kubelet:
    def __init__(
        self,
        api_url: str,
        workdir: Path,
        *,
        kubeconfig: Path | None = None,
        images: ImageTable | None = None,
        node_name: str = "emulated-node",
        timing: ProbeTiming | None = None,
        backoff: tuple[float, float] = (0.1, 1.0),
        max_grace: float = 5.0,
        rewrite_loopback: bool = True,
    ) -> None:
        self.api_url = api_url
        self.workdir = workdir
        self.node_name = node_name
        self.images = images or ImageTable.default()
        host, _, port = api_url.removeprefix("http://").partition(":")
        base_env = {
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(workdir),
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
        }
        if kubeconfig is not None:
            base_env["KUBECONFIG"] = str(kubeconfig)  # pods reach the API as the tests do
        self.settings = PodSettings(
            self.images, base_env, timing or ProbeTiming(), backoff, max_grace, rewrite_loopback
        )
        self.pods: dict[tuple[str, str], PodRun] = {}
        self._locks: collections.defaultdict[tuple[str, str], asyncio.Lock] = (
            collections.defaultdict(asyncio.Lock)
        )
        self.errors: list[BaseException] = []
        self._subnet = random.randint(2, 250)  # spread sessions over 127.0.X.0/24 subnets
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="test-kubelet", daemon=True
        )
        self._session: aiohttp.ClientSession | None = None
        self._main: concurrent.futures.Future[None] | None = None
        self._handling: set[asyncio.Task[Any]] = set()

    # --- lifecycle (called from the test thread) ----------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._main = asyncio.run_coroutine_threadsafe(self._run(), self._loop)

    def stop(self) -> None:
        """Kill every pod's processes (without deleting the pods) and stop the loop."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=30)
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
        return path.read_text(errors="replace") if path and path.exists() else ""

    # --- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        self._session = aiohttp.ClientSession(
            self.api_url, headers={"Authorization": "Bearer kubelet"}
        )
        try:
            await self._register_node()
            await self._sync_forever()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.errors.append(exc)
            logger.exception("test kubelet crashed")
            raise

    async def _shutdown(self) -> None:
        if self._main is not None:
            self._main.cancel()
        for task in list(self._handling):
            task.cancel()
        await asyncio.gather(*self._handling, return_exceptions=True)
        await asyncio.gather(
            *(self._stop_pod(run, delete=False) for run in list(self.pods.values()))
        )
        if self._session is not None:
            await self._session.close()

    async def _register_node(self) -> None:
        assert self._session is not None
        node = {
            "metadata": {
                "name": self.node_name,
                "labels": {"kubernetes.io/hostname": self.node_name},
            }
        }
        async with self._session.post("/api/v1/nodes", json=node) as response:
            if response.status not in (201, 409):
                raise RuntimeError(
                    f"cannot register node: {response.status} {await response.text()}"
                )
        status = {
            "status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        }
        headers = {"Content-Type": "application/merge-patch+json"}
        url = f"/api/v1/nodes/{self.node_name}/status"
        async with self._session.patch(url, data=json.dumps(status), headers=headers):
            pass

    async def _sync_forever(self) -> None:
        """List, then watch from the list's resourceVersion; relist on 410, rewatch on EOF."""
        assert self._session is not None
        rv: str | None = None
        while True:
            if rv is None:
                async with self._session.get("/api/v1/pods") as response:
                    listing = await response.json()
                rv = listing["metadata"]["resourceVersion"]
                seen = {
                    (p["metadata"]["namespace"], p["metadata"]["name"]) for p in listing["items"]
                }
                for key in set(self.pods) - seen:
                    self._handle(None, key)
                for pod in listing["items"]:
                    self._handle(pod, None)
            params = {"watch": "true", "resourceVersion": rv}
            timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
            async with self._session.get(
                "/api/v1/pods", params=params, timeout=timeout
            ) as response:
                async for line in response.content:
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        rv = None  # 410 Gone: too old; start over with a fresh list
                        break
                    rv = obj["metadata"]["resourceVersion"]
                    key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
                    self._handle(None if event["type"] == "DELETED" else obj, key)

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
            logger.exception("test kubelet failed to handle a pod")

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
        if pod["spec"].get("nodeName") not in (None, self.node_name):
            return
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            if run is not None and not run.terminating:
                run.pod = pod
                await self._stop_pod(
                    run, delete=True, grace=float(meta.get("deletionGracePeriodSeconds") or 0)
                )
            elif run is None and pod["spec"].get("nodeName") == self.node_name:
                await self._confirm_deletion(pod)
            return
        if run is not None:
            run.pod = pod
            return
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        await self._start_pod(pod)

    async def _start_pod(self, pod: JsonDict) -> None:
        assert self._session is not None
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if not pod["spec"].get("nodeName"):
            binding = {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name},
                "target": {"kind": "Node", "name": self.node_name},
            }
            async with self._session.post(
                f"/api/v1/namespaces/{ns}/pods/{name}/binding", json=binding
            ) as response:
                if response.status != 201:
                    return  # deleted or bound elsewhere meanwhile; its next event tells
        refs = {}
        for kind, ref_name in set(_referenced(pod)):
            plural = "configmaps" if kind == "ConfigMap" else "secrets"
            async with self._session.get(
                f"/api/v1/namespaces/{ns}/{plural}/{ref_name}"
            ) as response:
                if response.status == 200:
                    body = await response.json()
                    data = body.get("data") or {}
                    if kind == "Secret":
                        data = {k: base64.b64decode(v).decode() for k, v in data.items()}
                    refs[(kind, ns, ref_name)] = data
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
        )
        self.pods[(ns, name)] = run
        run.start()

    def _status_writer(self, ns: str, name: str) -> Any:
        async def write(status: JsonDict) -> None:
            assert self._session is not None
            headers = {"Content-Type": "application/merge-patch+json"}
            url = f"/api/v1/namespaces/{ns}/pods/{name}/status"
            async with self._session.patch(
                url, data=json.dumps({"status": status}), headers=headers
            ) as response:
                if response.status not in (200, 404):
                    logger.warning("status patch of %s/%s: %s", ns, name, await response.text())

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
        assert self._session is not None
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        options = {"gracePeriodSeconds": 0, "preconditions": {"uid": pod["metadata"]["uid"]}}
        with contextlib.suppress(aiohttp.ClientError):
            async with self._session.delete(f"/api/v1/namespaces/{ns}/pods/{name}", json=options):
                pass

    def _allocate_ip(self, ports: list[int]) -> str:
        with _ALLOCATED_LOCK:
            for offset in range(250 * 253):
                subnet = 2 + (self._subnet - 2 + offset // 253) % 249
                ip = f"127.0.{subnet}.{2 + offset % 253}"
                if ip not in _ALLOCATED and _ports_free(ip, ports):
                    _ALLOCATED.add(ip)
                    return ip
        raise RuntimeError("no free pod IP left in 127.0.0.0/16")
