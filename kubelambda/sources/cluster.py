"""The cluster poller's thin Kubernetes edge: presence and mapping Leases, status, secrets.

Every replica renews a presence Lease (`kubelambda-poller-<identity>`) and, for each mapping it
polls, a mapping Lease (`kubelambda-esm-<uid>`), both in the release's namespace, through the
`kubernetes` client (run in threads) with resourceVersion preconditions: two replicas can never
both hold one mapping. Which replica should hold what is `leases.plan()`, tested directly. The
owner writes the mapping's `status` (state, stateTransitionReason, lastProcessingResult).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubelambda.api.resources import EventSourceMapping, ManifestError, parse_resource
from kubelambda.sources.config import ConfigError, PollerConfig, poller_config
from kubelambda.sources.leases import LeaseView

log = logging.getLogger(__name__)
GROUP, VERSION, PLURAL = "kubelambda.dev", "v1alpha1", "eventsourcemappings"
ROLE_LABEL = "kubelambda.dev/poller-lease"
STATE_ANNOTATION = "kubelambda.dev/schedule-state"


def _micro(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


def lease_view(lease: Any) -> LeaseView:
    spec = lease.spec
    return LeaseView(
        holder=spec.holder_identity or None,
        renewed=_epoch(spec.renew_time or spec.acquire_time),
        duration=float(spec.lease_duration_seconds or 0),
    )


def mapping_key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


@dataclass
class Cluster:
    """The Kubernetes calls the poller makes, each in a thread (the client is synchronous)."""

    namespace: str  # where the Leases live
    identity: str
    duration: int = 10
    watched: list[str] | None = None  # namespaces to read mappings in; None or []: all

    def __post_init__(self) -> None:
        import kubernetes

        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()
        self.k = kubernetes
        self.coord = kubernetes.client.CoordinationV1Api()
        self.custom = kubernetes.client.CustomObjectsApi()
        self.core = kubernetes.client.CoreV1Api()

    async def mappings(self) -> list[dict[str, Any]]:
        if not self.watched:
            answer = await asyncio.to_thread(
                self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL
            )
            items: list[dict[str, Any]] = answer.get("items", [])
            return items
        found: list[dict[str, Any]] = []
        for namespace in self.watched:
            answer = await asyncio.to_thread(
                self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL
            )
            found += answer.get("items", [])
        return found

    async def leases(self) -> dict[str, Any]:
        answer = await asyncio.to_thread(
            self.coord.list_namespaced_lease, self.namespace, label_selector=ROLE_LABEL
        )
        return {lease.metadata.name: lease for lease in answer.items}

    def _body(self, name: str, role: str, holder: str | None, now: float, old: Any) -> Any:
        client = self.k.client
        meta = client.V1ObjectMeta(
            name=name,
            namespace=self.namespace,
            labels={ROLE_LABEL: role},
            resource_version=old.metadata.resource_version if old is not None else None,
            annotations=(old.metadata.annotations if old is not None else None),
        )
        acquire = now
        if old is not None and old.spec.holder_identity == holder and old.spec.acquire_time:
            acquire = _epoch(old.spec.acquire_time)
        spec = client.V1LeaseSpec(
            holder_identity=holder,
            lease_duration_seconds=self.duration,
            acquire_time=_micro(acquire) if holder else None,
            renew_time=_micro(now) if holder else None,
        )
        return client.V1Lease(metadata=meta, spec=spec)

    async def hold(self, name: str, role: str, old: Any, now: float, holder: str | None) -> bool:
        """Creates or replaces a Lease with a precondition; False when another writer won."""
        body = self._body(name, role, holder, now, old)
        try:
            if old is None:
                await asyncio.to_thread(self.coord.create_namespaced_lease, self.namespace, body)
            else:
                await asyncio.to_thread(
                    self.coord.replace_namespaced_lease, name, self.namespace, body
                )
        except self.k.client.ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    async def annotate(self, name: str, values: dict[str, Any]) -> None:
        patch = {"metadata": {"annotations": {STATE_ANNOTATION: json.dumps(values)}}}
        await asyncio.to_thread(self.coord.patch_namespaced_lease, name, self.namespace, patch)

    async def lease_state(self, name: str) -> dict[str, Any]:
        try:
            lease = await asyncio.to_thread(self.coord.read_namespaced_lease, name, self.namespace)
        except self.k.client.ApiException:
            return {}
        raw = (lease.metadata.annotations or {}).get(STATE_ANNOTATION)
        try:
            loaded: dict[str, Any] = json.loads(raw) if raw else {}
            return loaded
        except ValueError:
            return {}

    async def write_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        patch = {"status": status}
        with contextlib.suppress(self.k.client.ApiException):
            await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                patch,
            )

    async def secret(self, namespace: str, name: str) -> dict[str, str]:
        secret = await asyncio.to_thread(self.core.read_namespaced_secret, name, namespace)
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


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
