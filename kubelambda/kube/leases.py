"""coordination.k8s.io Lease objects as a small compare-and-set store (the thin I/O edge).

Two uses, both by the gateway's shared concurrency ledger: each replica's *heartbeat* Lease
(holderIdentity, renewTime, leaseDurationSeconds, renewed by its holder) and one *record* Lease
per served namespace, whose annotation holds a document that every replica rewrites with a
resourceVersion precondition (the apiserver answers 409 to all but the first writer).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from kubelambda.kube.client import ApiError, KubeApi, collection

GROUP, VERSION, PLURAL = "coordination.k8s.io", "v1", "leases"
RECORD_ANNOTATION = "kubelambda.dev/ledger"
ROLE_LABEL = "kubelambda.dev/ledger-role"  # heartbeat | record


@dataclass(frozen=True)
class Stored:
    text: str | None
    resource_version: str | None  # None: the object does not exist yet


@dataclass(frozen=True)
class Heartbeat:
    holder: str
    renewed: str  # the renewTime as stored: compared for change, never against our clock
    duration: float
    resource_version: str
    name: str


def micro_time() -> str:
    """A MicroTime as the apiserver wants it (RFC 3339, microseconds, UTC)."""
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseStore:
    def __init__(self, api: KubeApi, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self._base = collection(GROUP, VERSION, PLURAL, namespace)

    def _body(self, name: str, role: str, spec: dict[str, Any], meta: dict[str, Any]) -> Any:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Lease",
            "metadata": {"name": name, "labels": {ROLE_LABEL: role}, **meta},
            "spec": spec,
        }

    # Records.

    async def read(self, name: str) -> Stored:
        try:
            obj = await self.api.get(f"{self._base}/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return Stored(None, None)
            raise
        meta = obj.get("metadata") or {}
        text = (meta.get("annotations") or {}).get(RECORD_ANNOTATION)
        return Stored(text, str(meta.get("resourceVersion")))

    async def write(self, name: str, text: str, resource_version: str | None) -> bool:
        """Store `text` if the object is still at `resource_version` (None: if it does not
        exist); False when another writer got there first."""
        meta: dict[str, Any] = {"annotations": {RECORD_ANNOTATION: text}}
        try:
            if resource_version is None:
                await self.api.create(self._base, self._body(name, "record", {}, meta))
            else:
                meta["resourceVersion"] = resource_version
                await self.api.request(
                    "PUT", f"{self._base}/{name}", body=self._body(name, "record", {}, meta)
                )
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    # Heartbeats.

    async def renew(self, name: str, holder: str, duration: float) -> None:
        """Create or renew `holder`'s heartbeat (a merge patch: only the holder writes it)."""
        spec = {
            "holderIdentity": holder,
            "leaseDurationSeconds": max(1, round(duration)),
            "renewTime": micro_time(),
        }
        try:
            await self.api.patch(f"{self._base}/{name}", {"spec": spec})
        except ApiError as exc:
            if exc.status != 404:
                raise
            body = self._body(name, "heartbeat", {**spec, "acquireTime": spec["renewTime"]}, {})
            try:
                await self.api.create(self._base, body)
            except ApiError as again:
                if again.status != 409:  # 409: created meanwhile, just as fresh
                    raise

    async def heartbeats(self) -> list[Heartbeat]:
        answer = await self.api.list(self._base, f"{ROLE_LABEL}=heartbeat")
        found = []
        for item in answer.get("items") or []:
            spec = item.get("spec") or {}
            meta = item.get("metadata") or {}
            holder = spec.get("holderIdentity")
            if holder:
                found.append(
                    Heartbeat(
                        str(holder),
                        str(spec.get("renewTime")),
                        float(spec.get("leaseDurationSeconds") or 0),
                        str(meta.get("resourceVersion")),
                        str(meta.get("name")),
                    )
                )
        return found

    async def remove(self, name: str, resource_version: str | None = None) -> None:
        """Delete a Lease (with a precondition: only if nobody renewed it meanwhile)."""
        try:
            await self.api.delete(f"{self._base}/{name}", resource_version=resource_version)
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
