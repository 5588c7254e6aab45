"""The cluster poller's thin Kubernetes edge: presence and mapping Leases, status, secrets.

Every replica renews a presence Lease (`kubelambda-poller-<identity>`) and, for each mapping it
polls, a mapping Lease (`kubelambda-esm-<uid>`), both in the release's namespace, through the
shared asyncio client (`kube.client.KubeApi`) with resourceVersion preconditions: two replicas
can never both hold one mapping. Which replica should hold what is `leases.plan()`, tested
directly. The owner writes the mapping's `status` (state, stateTransitionReason,
lastProcessingResult). Leases travel as plain JSON dicts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubelambda.api.resources import EventSourceMapping, ManifestError, parse_resource
from kubelambda.kube.client import ApiError, JsonDict, KubeApi, collection
from kubelambda.kube.secrets import decode_secret
from kubelambda.sources.config import ConfigError, PollerConfig, poller_config
from kubelambda.sources.leases import LeaseView

log = logging.getLogger(__name__)
GROUP, VERSION, PLURAL = "kubelambda.dev", "v1alpha1", "eventsourcemappings"
COORD = ("coordination.k8s.io", "v1", "leases")
ROLE_LABEL = "kubelambda.dev/poller-lease"
STATE_ANNOTATION = "kubelambda.dev/schedule-state"


def _micro(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(value: Any) -> float:
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


def lease_view(lease: JsonDict) -> LeaseView:
    spec = lease.get("spec") or {}
    return LeaseView(
        holder=spec.get("holderIdentity") or None,
        renewed=_epoch(spec.get("renewTime") or spec.get("acquireTime")),
        duration=float(spec.get("leaseDurationSeconds") or 0),
    )


def lease_role(lease: JsonDict) -> str | None:
    labels = (lease.get("metadata") or {}).get("labels") or {}
    role = labels.get(ROLE_LABEL)
    return str(role) if role else None


def lease_body(
    name: str,
    namespace: str,
    role: str,
    holder: str | None,
    now: float,
    old: JsonDict | None,
    duration: int,
) -> JsonDict:
    """The Lease to write: `old`'s resourceVersion as the precondition, acquireTime kept while
    the holder stays the same; a released Lease has no holder and no times."""
    meta: JsonDict = {"name": name, "namespace": namespace, "labels": {ROLE_LABEL: role}}
    acquire = now
    if old is not None:
        old_meta, old_spec = old.get("metadata") or {}, old.get("spec") or {}
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if old_meta.get("annotations"):
            meta["annotations"] = old_meta["annotations"]
        if old_spec.get("holderIdentity") == holder and old_spec.get("acquireTime"):
            acquire = _epoch(old_spec["acquireTime"])
    spec: JsonDict = {"leaseDurationSeconds": duration}  # the API refuses 0
    if holder:
        spec.update(holderIdentity=holder, acquireTime=_micro(acquire), renewTime=_micro(now))
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}


def mapping_key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


@dataclass
class Cluster:
    """The Kubernetes calls the poller makes, on the shared asyncio client."""

    namespace: str  # where the Leases live
    identity: str
    duration: int = 10
    watched: list[str] | None = None  # namespaces to read mappings in; None or []: all
    api: KubeApi = field(default_factory=KubeApi.from_environment)

    def _lease_path(self, name: str | None = None) -> str:
        base = collection(*COORD, self.namespace)
        return f"{base}/{name}" if name else base

    async def close(self) -> None:
        await self.api.close()

    async def mappings(self) -> list[JsonDict]:
        found: list[JsonDict] = []
        namespaces: list[str | None] = [*self.watched] if self.watched else [None]
        for namespace in namespaces:
            answer = await self.api.list(collection(GROUP, VERSION, PLURAL, namespace))
            found += answer.get("items") or []
        return found

    async def leases(self) -> dict[str, JsonDict]:
        answer = await self.api.list(self._lease_path(), label_selector=ROLE_LABEL)
        return {lease["metadata"]["name"]: lease for lease in answer.get("items") or []}

    async def hold(
        self, name: str, role: str, old: JsonDict | None, now: float, holder: str | None
    ) -> bool:
        """Creates or replaces a Lease with a precondition; False when another writer won."""
        body = lease_body(name, self.namespace, role, holder, now, old, self.duration)
        try:
            if old is None:
                await self.api.create(self._lease_path(), body)
            else:
                await self.api.request("PUT", self._lease_path(name), body=body)
        except ApiError as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    async def annotate(self, name: str, values: dict[str, Any]) -> None:
        patch = {"metadata": {"annotations": {STATE_ANNOTATION: json.dumps(values)}}}
        await self.api.patch(self._lease_path(name), patch)

    async def lease_state(self, name: str) -> dict[str, Any]:
        try:
            lease = await self.api.get(self._lease_path(name))
        except ApiError:
            return {}
        raw = ((lease.get("metadata") or {}).get("annotations") or {}).get(STATE_ANNOTATION)
        try:
            loaded = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}

    async def write_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        path = f"{collection(GROUP, VERSION, PLURAL, namespace)}/{name}/status"
        try:
            await self.api.patch(path, {"status": status})
        except ApiError as exc:  # the mapping deleted meanwhile, or the API server away
            log.info("status of %s/%s not written: %s", namespace, name, exc.status)

    async def secret(self, namespace: str, name: str) -> dict[str, str]:
        return decode_secret(
            await self.api.get(f"{collection('', 'v1', 'secrets', namespace)}/{name}")
        )


def configs_from(objects: list[dict[str, Any]]) -> tuple[dict[str, PollerConfig], list[str]]:
    """The valid mappings by key, and what was wrong with the others (for their status)."""
    out: dict[str, PollerConfig] = {}
    problems: list[str] = []
    for obj in objects:
        doc = {k: obj[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in obj}
        meta = obj.get("metadata", {})
        try:
            resource = parse_resource(doc)
            assert isinstance(resource, EventSourceMapping)
            out[mapping_key(obj)] = poller_config(resource, uid=meta.get("uid"))
        except (ManifestError, ConfigError) as exc:
            problems.append(f"{meta.get('namespace')}/{meta.get('name')}: {exc}")
    return out, problems


def lease_name(config: PollerConfig) -> str:
    return f"kubelambda-esm-{config.uid}"[:63]


def presence_name(identity: str) -> str:
    return f"kubelambda-poller-{identity}"[:63]
