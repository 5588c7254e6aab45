"""Which pods may serve a specialization, and the writes that claim and release them. Pure.

- A provisioned call takes a `ready` provisioned pod whose revision is the spec's own.
- Otherwise a function whose shape fits a generic pod (x86_64, no role, no placement, memory and
  /tmp within the pod's) takes a `warm` generic pod of its runtime in its namespace; any other
  function takes a `warm` pod of its own dedicated pool (same function, same shape).
Candidates are Ready on a Ready Node, have an IP and are not being deleted; they are shuffled,
so replicas that claim at the same moment mostly try different pods.

Who wins a pod: a `warm` pod's agent takes one specialization only (a second one, or the
operator's retire, answers 409), so it decides, and the winner's labels follow (`taken_patch`,
no precondition: the agent already decided). A `ready` provisioned pod was specialized at start,
so there the claim's write decides: it carries the pod's resourceVersion, and the apiserver
answers 409 to all but the first replica (`claim_patch`). Both clear the pod's managedFields
(`[{}]`, the apiserver's reset): the apiserver then skips its field manager for that write, a
third of its time, and the pod is 5 KB smaller for every later write and watch event (nobody
reads the field ownership of the operator's and kubelet's writes; bench/README.md, "The claim and
the refill").
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubelambda.kube import contract as c
from kubelambda.kube.contract import PodInfo
from kubelambda.serving.shape import PodShape


@dataclass(frozen=True)
class Want:
    """What a specialization needs from a pod."""

    namespace: str
    function: str
    runtime: str
    shape: PodShape
    revision: str | None = None  # set: a provisioned pod of exactly this revision

    @property
    def generic(self) -> bool:
        return (
            self.shape.architecture == "x86_64"
            and self.shape.role is None
            and not self.shape.placement
            and not self.shape.image
        )


def matches(pod: PodInfo, want: Want) -> bool:
    if pod.namespace != want.namespace or pod.deleting or not pod.serving or not pod.ip:
        return False
    if pod.phase != "Running":
        return False
    if want.revision is not None:
        return pod.pool == "provisioned" and pod.state == "ready" and pod.revision == want.revision
    if pod.state != "warm" or pod.runtime != want.runtime:
        return False
    if want.generic and pod.pool == "generic":
        return pod.memory >= want.shape.memory and pod.ephemeral >= want.shape.ephemeral_storage
    return pod.pool == "function" and pod.function == want.function and pod.shape == want.shape.key


def takeable(pod: PodInfo) -> bool:
    """Whether an on-demand specialization could take `pod` (a `warm` one of any pool)."""
    return (
        pod.state == "warm"
        and pod.serving
        and pod.phase == "Running"
        and bool(pod.ip)
        and not pod.deleting
    )


def serving(pod: Mapping[str, Any]) -> bool:
    """Whether a claimed pod may still take invocations: Running, Ready and not being deleted.

    Ready, not just Running: a pod on a dead node stays "Running" for minutes, but the
    node-lifecycle controller marks its Ready condition False within the grace period. Read
    from the object itself, not through `PodInfo` (every warm invoke asks; parsing dates
    showed in its profile)."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    conditions = status.get("conditions") or []
    return any(x.get("type") == "Ready" and x.get("status") == "True" for x in conditions)


def candidates(
    pods: Iterable[PodInfo], want: Want, skip: set[str], rng: random.Random | None = None
) -> list[PodInfo]:
    """Pods that may serve `want`, minus the names in `skip`, in random order."""
    found = [p for p in pods if p.name not in skip and matches(p, want)]
    (rng or random).shuffle(found)
    return found


def claim_patch(
    pod: PodInfo, identity: str, function: str, version: str, revision: str, now: float
) -> dict[str, Any]:
    """A merge patch that claims `pod`, valid only at the resourceVersion it was seen at."""
    meta = _claim_meta(identity, function, version, revision, now)
    return {"metadata": {"resourceVersion": pod.resource_version, **meta}}


def taken_patch(
    identity: str, function: str, version: str, revision: str, now: float
) -> dict[str, Any]:
    """A merge patch that labels a pod whose agent this replica specialized."""
    return {"metadata": _claim_meta(identity, function, version, revision, now)}


def _claim_meta(
    identity: str, function: str, version: str, revision: str, now: float
) -> dict[str, Any]:
    return {
        "managedFields": [{}],  # one empty entry: the apiserver drops them all, cheaply
        "labels": {
            c.STATE: "claimed",
            c.CLAIMED_BY: identity,
            c.FUNCTION: function,
            c.VERSION: c.version_label(version),
            c.REVISION: revision,
        },
        "annotations": {c.CLAIM_RENEWED: f"{now:.3f}", c.LAST_USED: f"{now:.3f}"},
    }


def renew_patch(now: float, last_used: float) -> dict[str, Any]:
    return {
        "metadata": {
            "annotations": {c.CLAIM_RENEWED: f"{now:.3f}", c.LAST_USED: f"{last_used:.3f}"}
        }
    }


def release_patch(seen: str | None = None) -> dict[str, Any]:
    """Hand a pod back: the operator deletes released pods (only it deletes pods). `seen`:
    only at that resourceVersion."""
    meta: dict[str, Any] = {"labels": {c.STATE: "released"}}
    if seen is not None:
        meta["resourceVersion"] = seen
    return {"metadata": meta}
