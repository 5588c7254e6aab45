"""Pool sizing and reaping: observed function pods + demand in, pods to create and delete out.

Pure (the clock is an argument). Every pod is judged once, first matching rule wins:

- being deleted: ignored; exited (phase Failed/Succeeded) or `released` by a gateway: deleted;
- claimed: deleted when the claim's lease lapsed (the claiming gateway is gone), when it has been
  idle past the keep-alive (a safety net: gateways release idle pods themselves), when it is far
  past the maximum age, or when its function no longer exists; on a NotReady Node it is not
  counted toward its target (its gateway drops it), so a replacement starts elsewhere;
- free (warm or ready): deleted when its Node is NotReady (the pool refills on a living node),
  when it never became Ready, when over the maximum age, when nothing calls for it any more, or
  as surplus (not-Ready and youngest first);

then each pool is topped up to its size. A claimed pod leaves the generic pool at once, so the
pool is short as soon as a pod is claimed; a claimed provisioned pod still counts toward its
target. With a `RefillGate` (`refill.py`), a short pool that still has free pods is topped up a
short moment later instead of at once (`PoolPlan.deferred` counts the pods held back).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubelambda.kube.contract import PodInfo
from kubelambda.operator.config import OperatorConfig
from kubelambda.operator.demand import Demand
from kubelambda.operator.podbuilder import PodRequest
from kubelambda.operator.refill import RefillGate

LONGEST_TIMEOUT = 900.0  # a claimed pod may be mid-invoke for this long past max age


@dataclass
class PoolPlan:
    create: list[PodRequest] = field(default_factory=list)
    delete: list[tuple[PodInfo, str]] = field(default_factory=list)
    deferred: int = 0  # pods the refill gate holds back for now


def _claimed_verdict(pod: PodInfo, config: OperatorConfig, demand: Demand, now: float) -> str:
    renewed = pod.claim_renewed or pod.created
    if now - renewed > config.claim_lease:
        return f"orphaned: {pod.claimed_by or 'its gateway'} stopped renewing its claim"
    if (
        pod.last_used is not None
        and now - pod.last_used > config.idle_keepalive + config.claim_lease
    ):
        return f"idle for more than {config.idle_keepalive:g} s"
    if now - pod.created > config.max_age + LONGEST_TIMEOUT + config.claim_lease:
        return f"older than the maximum age ({config.max_age:g} s)"
    if pod.function is not None and (pod.namespace, pod.function) not in demand.functions:
        return f"its function {pod.function} was deleted"
    return ""


def pool_of(pod: PodInfo, config: OperatorConfig) -> tuple[str, ...] | None:
    """The pool a free pod belongs to, or None when nothing calls for pods like it."""
    if pod.pool == "generic":
        if pod.shape != config.generic_shape(pod.runtime).key:
            return None
        return ("generic", pod.namespace, pod.runtime)
    if pod.pool == "function":
        return ("function", pod.namespace, pod.function or "", pod.shape)
    if pod.pool == "provisioned":
        return ("provisioned", pod.revision or "")
    return None


def _desired(demand: Demand) -> dict[tuple[str, ...], int]:
    wanted: dict[tuple[str, ...], int] = {}
    for (ns, runtime), size in demand.generic.items():
        wanted[("generic", ns, runtime)] = size
    for (ns, function, shape), dedicated in demand.dedicated.items():
        wanted[("function", ns, function, shape)] = dedicated.count
    for revision, provisioned in demand.provisioned.items():
        wanted[("provisioned", revision)] = provisioned.count
    return wanted


def _request(
    group: tuple[str, ...], config: OperatorConfig, demand: Demand, owners: Mapping[Any, Any]
) -> PodRequest:
    if group[0] == "generic":
        return PodRequest("generic", group[1], config.generic_shape(group[2]))
    if group[0] == "function":
        dedicated = demand.dedicated[(group[1], group[2], group[3])]
        return PodRequest(
            "function",
            dedicated.namespace,
            dedicated.shape,
            function=dedicated.function,
            owner=owners.get((dedicated.namespace, dedicated.function)),
        )
    wanted = demand.provisioned[group[1]]
    return PodRequest(
        "provisioned",
        wanted.namespace,
        wanted.shape,
        function=wanted.function,
        version=wanted.version,
        revision=wanted.revision,
        spec_json=wanted.spec_json,
        owner=owners.get((wanted.namespace, wanted.function)),
    )


def plan(
    config: OperatorConfig,
    demand: Demand,
    pods: Iterable[PodInfo],
    now: float,
    owners: Mapping[tuple[str, str], dict[str, Any]] | None = None,
    gate: RefillGate | None = None,
) -> PoolPlan:
    """What to create and delete so that every pool has its size; see the module docstring."""
    result = PoolPlan()
    wanted = _desired(demand)
    counted: dict[tuple[str, ...], list[PodInfo]] = defaultdict(list)
    for pod in pods:
        if pod.deleting or not pod.pool:
            continue
        if pod.phase in ("Failed", "Succeeded"):
            result.delete.append((pod, f"its environment exited (phase {pod.phase})"))
            continue
        if pod.state == "released":
            result.delete.append((pod, f"released by {pod.claimed_by or 'a gateway'}"))
            continue
        if pod.state == "claimed":
            verdict = _claimed_verdict(pod, config, demand, now)
            if verdict:
                result.delete.append((pod, verdict))
            elif not pod.node_ready:
                pass  # serves nothing; not counted, so its pool gets a replacement
            elif pod.pool == "provisioned" and pod.revision in demand.provisioned:
                counted[("provisioned", pod.revision)].append(pod)
            continue
        if not pod.free:
            result.delete.append((pod, f"unknown state {pod.state!r}"))
            continue
        group = pool_of(pod, config)
        if not pod.node_ready:
            result.delete.append((pod, f"its node {pod.node or ''} is not Ready"))
        elif not pod.ready and now - pod.created > config.start_timeout:
            result.delete.append((pod, f"not Ready after {config.start_timeout:g} s"))
        elif now - pod.created > config.max_age:
            result.delete.append((pod, f"recycled after the maximum age ({config.max_age:g} s)"))
        elif group is None or group not in wanted:
            result.delete.append((pod, "no pool calls for it any more"))
        else:
            counted[group].append(pod)
    for group, members in counted.items():
        surplus = len(members) - wanted.get(group, 0)
        if surplus > 0:
            # Keep Ready, claimed and older pods; drop not-Ready, free and younger ones first.
            ranked = sorted(members, key=lambda p: (p.ready, not p.free, -p.created))
            result.delete += [(p, "surplus") for p in ranked[:surplus] if p.free]
    for group, size in sorted(wanted.items()):
        members = counted.get(group, [])
        missing = max(size - len(members), 0)
        if gate is not None:
            free_ready = sum(1 for p in members if p.free and p.ready)
            allowed = gate.allow(group, missing, free_ready, now)
            result.deferred += missing - allowed
            missing = allowed
        for _ in range(missing):
            result.create.append(_request(group, config, demand, owners or {}))
    if gate is not None:
        gate.forget(set(wanted))
    return result
