"""Run the emulated apiserver on a loopback port in a background thread, with a kubeconfig.

The server has its own thread and event loop, so that synchronous clients (the official
`kubernetes` client, `kubectl` in a subprocess) and other event loops (kopf's, the kubelet's)
can all talk to it over HTTP while a test blocks. Tests reach the in-memory state only through
`ApiServer.call()`, which runs a function on the server's loop, where the store lives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import kmock
import yaml

from tests.cluster.emulator import FaithfulEmulator
from tests.cluster.store import Store

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
FIXTURE_CRDS = Path(__file__).parent / "fixtures"


def crd_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in the given YAML files and folders (sorted, recursive)."""
    files: list[Path] = []
    for path in paths:
        files += sorted(path.rglob("*.y*ml")) if path.is_dir() else [path]
    docs = []
    for file in files:
        for doc in yaml.safe_load_all(file.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                docs.append(doc)
    return docs


class ApiServer:
    """The emulated apiserver, started by `start()` and stopped by `stop()` (or as a context)."""

    def __init__(self, workdir: Path, crds: Iterable[dict[str, Any]] = ()) -> None:
        self.workdir = workdir
        self.kubeconfig = workdir / "kubeconfig.yaml"
        self._crds = list(crds)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="emulated-apiserver", daemon=True)
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None
        self.emulator = FaithfulEmulator(store=Store())
        self.host = "127.0.0.1"
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def store(self) -> Store:
        """The state; touch it only inside `call()`, on the server's loop."""
        return self.emulator.store

    def __enter__(self) -> ApiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        self._ready.result(timeout=10)
        self._write_kubeconfig()

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the server's event loop (where the store is safe to touch)."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def register_crds(self, crds: Iterable[dict[str, Any]]) -> None:
        """Create CRDs through the store, as `kubectl apply -f crds/` would."""
        crds = list(crds)

        def create() -> None:
            rt = self.store.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            for crd in crds:
                self.store.create(rt, None, crd)

        self.call(create)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        for crd in self._crds:
            rt = self.store.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            self.store.create(rt, None, crd)
        async with self.emulator, kmock.Server(self.emulator, host=self.host) as server:
            self.port = server.port
            self._ready.set_result(None)
            await self._stop.wait()
            await self.emulator.close_watches()

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "emulated-cluster-token"}}],
            "contexts": [
                {
                    "name": "emulated",
                    "context": {"cluster": "emulated", "user": "tester", "namespace": "default"},
                }
            ],
            "current-context": "emulated",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
