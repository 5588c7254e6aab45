"""The catalog source of cluster mode: the watch layer, rebuilt into a catalog on every change.

A Function, Version or Alias event marks the catalog dirty; a burst of events is coalesced into
one rebuild (`catalog_from_objects`, only what the operator accepted). The ConfigMaps code comes
from and the Secrets that secretKeyRefs name are fetched before the catalog is served, so every
spec built from it has its code and its values. The Secrets are read again every
`secrets.REFRESH` seconds; when a value changed the catalog is served again, so rotated values
reach the environments started from then on. Pod
events do not rebuild: they only wake claimers (`ClusterView.wait_for_pods`).
"""

from __future__ import annotations

import asyncio
import logging

from kubelambda.gateway.assembly import Apply
from kubelambda.kube.catalog import catalog_from_objects
from kubelambda.kube.client import KubeApi
from kubelambda.kube.codes import ConfigMapCode
from kubelambda.kube.secrets import REFRESH, ClusterSecrets
from kubelambda.kube.view import ClusterView
from kubelambda.serving.catalog import Catalog

log = logging.getLogger(__name__)
COALESCE = 0.02  # seconds to let a burst of watch events settle into one rebuild


class ClusterCatalog:
    def __init__(
        self, api: KubeApi, view: ClusterView, code: ConfigMapCode, secrets: ClusterSecrets
    ) -> None:
        self.api = api
        self.view = view
        self.code = code
        self.secrets = secrets
        self.catalog: Catalog | None = None  # the last one built
        self._dirty = asyncio.Event()
        self._built = False  # whether a first catalog has been applied

    @property
    def synced(self) -> bool:
        return self.view.synced

    def _on_change(self, kind: str) -> None:
        # Pods do not change the catalog, but until the first one is built the pods' listing
        # may be the last of the watches to arrive: it must wake the first build.
        if kind != "pods" or not self._built:
            self._dirty.set()

    async def open(self, apply: Apply) -> None:
        self.view.subscribe(self._on_change)
        self.view.start()

    async def run(self, apply: Apply) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(COALESCE)
            self._dirty.clear()
            if not self.view.synced:
                continue
            catalog = catalog_from_objects(
                self.view.objects("functions"),
                self.view.objects("versions"),
                self.view.objects("aliases"),
            )
            await self.code.refresh(catalog)  # before any spec is built from the catalog
            await self.secrets.refresh(catalog)
            self.catalog = catalog
            problems = catalog.problems + apply(catalog)
            self._built = True
            for line in problems:
                log.warning("catalog: %s", line)
            log.info("serving %d function(s)", len(catalog.functions))

    async def refresh_secrets_forever(self, every: float = REFRESH) -> None:
        """Read the Secrets again every `every` seconds; a changed value serves the catalog
        again (the same revisions: environments already running keep the values they got)."""
        while True:
            await asyncio.sleep(every)
            if self.catalog is not None and await self.secrets.refresh(self.catalog):
                self._dirty.set()

    async def close(self) -> None:
        await self.view.stop()
        await self.api.close()
