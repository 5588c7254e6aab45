"""The function-pod contract between the operator (which writes pods) and the gateway (which claims
them): label and annotation names, pod states, the facts read back from a pod, revision digests.

The shape a pod must have (`PodShape`) is part of the serving model (`kubelambda.serving.shape`),
because name resolution works it out once for every layer below.

A function pod moves through these states, each written by exactly one party:

    warm      (operator creates)  a generic pod, unspecialized, free to claim
    ready     (operator creates)  a provisioned pod, specialized at start, free to claim
    claimed   (gateway patches)   held by one gateway replica, named in `claimed-by`
    released  (gateway patches)   the gateway let it go; the operator deletes it

Claims patch the labels with a resourceVersion precondition, so only one replica can win a pod.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from kubelambda.api.common import LATEST
from kubelambda.runtime.spec import EnvironmentSpec
from kubelambda.serving.shape import digest

PREFIX = "kubelambda.dev"
PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"
POOL = f"{PREFIX}/pool"
AGENT_NONCE = f"{PREFIX}/agent-nonce"  # its agent's token is derived from it (agentauth.py)
RUNTIME = f"{PREFIX}/runtime"
FUNCTION = f"{PREFIX}/function"
VERSION = f"{PREFIX}/version"
STATE = f"{PREFIX}/state"
SHAPE = f"{PREFIX}/shape"
REVISION = f"{PREFIX}/revision"
CLAIMED_BY = f"{PREFIX}/claimed-by"
# Annotations.
CLAIM_RENEWED = f"{PREFIX}/claim-renewed"  # epoch seconds; the claim's lease
LAST_USED = f"{PREFIX}/last-used"  # epoch seconds of the last invocation
SPEC = f"{PREFIX}/spec"  # a provisioned pod's EnvironmentSpec (JSON), read by its agent
MEMORY = f"{PREFIX}/memory-mb"
EPHEMERAL = f"{PREFIX}/ephemeral-mb"

MANAGER = "kubelambda-operator"
AGENT_PORT = 8080
POOL_SELECTOR = f"{PART_OF}=kubelambda,{POOL}"  # every function pod, for list and watch

Pool = Literal["generic", "provisioned", "function"]
PodState = Literal["warm", "ready", "claimed", "released"]
FREE_STATES: dict[Pool, PodState] = {"generic": "warm", "function": "warm", "provisioned": "ready"}


def version_label(version: str) -> str:
    """`$LATEST` is not a valid label value; everything else (a number) is."""
    return "LATEST" if version == LATEST else version


def spec_revision(spec: EnvironmentSpec) -> str:
    """Identifies an exact specialization; provisioned pods are matched to calls by it."""
    return digest(spec.model_dump(mode="json", by_alias=True))


def _epoch(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class PodInfo:
    """The facts about one function pod that sizing and claiming use."""

    name: str
    namespace: str
    pool: str
    runtime: str
    state: str
    shape: str
    created: float
    ready: bool = False
    phase: str = "Pending"
    deleting: bool = False
    function: str | None = None
    version: str | None = None
    revision: str | None = None
    claimed_by: str | None = None
    claim_renewed: float | None = None
    last_used: float | None = None
    ip: str | None = None
    resource_version: str = ""
    memory: int = 0
    ephemeral: int = 0
    agent_nonce: str = ""
    node: str | None = None  # spec.nodeName
    # The Node's own Ready condition (the view fills it in): a dead node's pods keep their
    # Ready condition until the node-lifecycle controller's next pass, so both are required.
    node_ready: bool = True

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any]) -> PodInfo:
        meta = pod.get("metadata", {})
        labels = meta.get("labels") or {}
        notes = meta.get("annotations") or {}
        status = pod.get("status") or {}
        conditions = status.get("conditions") or []
        return cls(
            name=meta.get("name", ""),
            namespace=meta.get("namespace", ""),
            pool=labels.get(POOL, ""),
            runtime=labels.get(RUNTIME, ""),
            state=labels.get(STATE, ""),
            shape=labels.get(SHAPE, ""),
            created=_epoch(meta.get("creationTimestamp")) or 0.0,
            ready=any(x.get("type") == "Ready" and x.get("status") == "True" for x in conditions),
            phase=status.get("phase", "Pending"),
            deleting=bool(meta.get("deletionTimestamp")),
            function=labels.get(FUNCTION),
            version=labels.get(VERSION),
            revision=labels.get(REVISION),
            claimed_by=labels.get(CLAIMED_BY),
            claim_renewed=_float(notes.get(CLAIM_RENEWED)),
            last_used=_float(notes.get(LAST_USED)),
            ip=status.get("podIP"),
            resource_version=meta.get("resourceVersion", ""),
            memory=int(notes.get(MEMORY, "0") or 0),
            ephemeral=int(notes.get(EPHEMERAL, "0") or 0),
            agent_nonce=notes.get(AGENT_NONCE, ""),
            node=(pod.get("spec") or {}).get("nodeName"),
        )

    @property
    def free(self) -> bool:
        return self.state in ("warm", "ready")

    @property
    def serving(self) -> bool:
        """Ready, and on a Node that is Ready: only such a pod may be sent invokes."""
        return self.ready and self.node_ready


def node_ready(node: Mapping[str, Any]) -> bool:
    """A Node's Ready condition is True (False or Unknown: the kubelet is gone or unhealthy)."""
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(x.get("type") == "Ready" and x.get("status") == "True" for x in conditions)
