"""Pool sizing and reaping as a pure function: observed pods + demand in, creates/deletes out."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from kubelambda.kube.catalog import catalog_from_objects
from kubelambda.kube.contract import PodInfo
from kubelambda.operator.config import OperatorConfig
from kubelambda.operator.demand import DedicatedDemand, Demand, ProvisionedDemand, demand
from kubelambda.operator.refill import RefillGate
from kubelambda.operator.sizing import plan
from kubelambda.serving.shape import PodShape
from tests.unit.operator.docs import NOW, active_function

CONFIG = OperatorConfig(
    agent_image="kubelambda/kubelambda:0.1.0",
    namespaces=("default",),
    warm_pool={"python3.12": 2},
    claim_lease=60,
    idle_keepalive=300,
    max_age=3600,
    start_timeout=120,
)
GENERIC = CONFIG.generic_shape("python3.12")
BIG = PodShape("python3.12", 4096, 512)
PROV = ProvisionedDemand("default", "hello", "1", "rev1", 2, PodShape("python3.12", 128, 512), "{}")


def wanted(**kw: object) -> Demand:
    base = Demand(
        generic={("default", "python3.12"): 2},
        dedicated={},
        provisioned={},
        functions={("default", "hello")},
        problems=[],
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def pod(name: str, **kw: object) -> PodInfo:
    base = PodInfo(
        name=name,
        namespace="default",
        pool="generic",
        runtime="python3.12",
        state="warm",
        shape=GENERIC.key,
        created=NOW - 10,
        ready=True,
        phase="Running",
        ip="127.0.5.5",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def deleted(result: object) -> dict[str, str]:
    return {p.name: why for p, why in result.delete}  # type: ignore[attr-defined]


def test_an_empty_namespace_gets_its_warm_pool() -> None:
    result = plan(CONFIG, wanted(), [], NOW)
    assert [(r.pool, r.namespace, r.shape) for r in result.create] == [
        ("generic", "default", GENERIC)
    ] * 2
    assert result.delete == []


def test_a_full_pool_is_left_alone() -> None:
    result = plan(CONFIG, wanted(), [pod("a"), pod("b", ready=False)], NOW)
    assert result.create == [] and result.delete == []


def test_a_claimed_pod_is_refilled_at_once() -> None:
    claimed = pod("a", state="claimed", claimed_by="gw", claim_renewed=NOW, function="hello")
    result = plan(CONFIG, wanted(), [claimed, pod("b")], NOW)
    assert len(result.create) == 1 and result.delete == []


def test_with_a_refill_gate_a_claimed_pod_is_refilled_a_moment_later() -> None:
    claimed = pod("a", state="claimed", claimed_by="gw", claim_renewed=NOW, function="hello")
    gate = RefillGate(delay=0.5)
    result = plan(CONFIG, wanted(), [claimed, pod("b")], NOW, gate=gate)
    assert result.create == [] and result.deferred == 1
    assert gate.wake_at == NOW + 0.5
    result = plan(CONFIG, wanted(), [claimed, pod("b")], NOW + 0.5, gate=gate)
    assert len(result.create) == 1 and result.deferred == 0


def test_with_a_refill_gate_a_pool_without_free_ready_pods_is_refilled_at_once() -> None:
    claimed = [
        pod(n, state="claimed", claimed_by="gw", claim_renewed=NOW, function="hello")
        for n in ("a", "b")
    ]
    gate = RefillGate(delay=0.5)
    assert len(plan(CONFIG, wanted(), claimed, NOW, gate=gate).create) == 2
    starting = pod("c", ready=False)  # created, not Ready yet: not free capacity
    result = plan(CONFIG, wanted(), [*claimed, starting], NOW, gate=gate)
    assert len(result.create) == 1 and result.deferred == 0


def test_exited_released_and_unknown_pods_are_deleted() -> None:
    pods = [
        pod("dead", phase="Failed"),
        pod("done", phase="Succeeded"),
        pod("back", state="released", claimed_by="gw-a"),
        pod("odd", state="weird"),
        pod("a"),
        pod("b"),
    ]
    reasons = deleted(plan(CONFIG, wanted(), pods, NOW))
    assert set(reasons) == {"dead", "done", "back", "odd"}
    assert "released by gw-a" in reasons["back"]
    assert "phase Failed" in reasons["dead"]


def test_pods_being_deleted_are_ignored() -> None:
    result = plan(CONFIG, wanted(), [pod("going", deleting=True, phase="Failed")], NOW)
    assert result.delete == [] and len(result.create) == 2


def test_claims_whose_gateway_is_gone_are_reaped() -> None:
    stale = pod(
        "orphan", state="claimed", claimed_by="gw-x", claim_renewed=NOW - 61, function="hello"
    )
    fresh = pod(
        "held", state="claimed", claimed_by="gw-a", claim_renewed=NOW - 59, function="hello"
    )
    reasons = deleted(plan(CONFIG, wanted(), [stale, fresh, pod("a"), pod("b")], NOW))
    assert list(reasons) == ["orphan"] and "gw-x stopped renewing" in reasons["orphan"]


def test_idle_and_over_age_claims_are_reaped() -> None:
    idle = pod("idle", state="claimed", claim_renewed=NOW, last_used=NOW - 361, function="hello")
    old = pod(
        "old", state="claimed", claim_renewed=NOW, created=NOW - 3600 - 900 - 61, function="hello"
    )
    busy = pod("busy", state="claimed", claim_renewed=NOW, last_used=NOW - 10, function="hello")
    reasons = deleted(plan(CONFIG, wanted(), [idle, old, busy, pod("a"), pod("b")], NOW))
    assert set(reasons) == {"idle", "old"}
    assert "idle" in reasons["idle"] and "maximum age" in reasons["old"]


def test_claims_of_a_deleted_function_are_reaped() -> None:
    gone = pod("gone", state="claimed", claim_renewed=NOW, function="deleted-fn")
    reasons = deleted(plan(CONFIG, wanted(), [gone, pod("a"), pod("b")], NOW))
    assert reasons == {"gone": "its function deleted-fn was deleted"}


def test_stuck_and_old_warm_pods_are_replaced() -> None:
    stuck = pod("stuck", ready=False, created=NOW - 121)
    old = pod("old", created=NOW - 3601)
    result = plan(CONFIG, wanted(), [stuck, old], NOW)
    assert set(deleted(result)) == {"stuck", "old"}
    assert len(result.create) == 2


def test_surplus_warm_pods_go_not_ready_and_youngest_first() -> None:
    pods = [
        pod("old-ready", created=NOW - 50),
        pod("young-ready", created=NOW - 5),
        pod("mid-ready", created=NOW - 20),
        pod("not-ready", ready=False, created=NOW - 60),
    ]
    assert set(deleted(plan(CONFIG, wanted(), pods, NOW))) == {"not-ready", "young-ready"}


def test_pools_nobody_wants_are_emptied() -> None:
    pods = [
        pod("other-runtime", runtime="python3.13"),
        pod("old-shape", shape="something-else"),
        pod("a"),
        pod("b"),
    ]
    assert set(deleted(plan(CONFIG, wanted(), pods, NOW))) == {"other-runtime", "old-shape"}


def test_provisioned_pods_are_created_and_claimed_ones_count() -> None:
    want = wanted(provisioned={"rev1": PROV})
    result = plan(CONFIG, want, [pod("a"), pod("b")], NOW)
    made = [r for r in result.create if r.pool == "provisioned"]
    assert len(made) == 2 and made[0].revision == "rev1" and made[0].spec_json == "{}"
    claimed = pod(
        "p1",
        pool="provisioned",
        state="claimed",
        revision="rev1",
        claim_renewed=NOW,
        function="hello",
    )
    free = pod("p2", pool="provisioned", state="ready", revision="rev1", shape=PROV.shape.key)
    result = plan(CONFIG, want, [pod("a"), pod("b"), claimed, free], NOW)
    assert result.create == [] and result.delete == []


def test_stale_and_surplus_provisioned_pods_are_deleted() -> None:
    want = wanted(provisioned={"rev1": replace(PROV, count=1)})
    pods = [
        pod("a"),
        pod("b"),
        pod("stale", pool="provisioned", state="ready", revision="rev0"),
        pod("keep", pool="provisioned", state="ready", revision="rev1", created=NOW - 30),
        pod("extra", pool="provisioned", state="ready", revision="rev1", created=NOW - 3),
    ]
    assert set(deleted(plan(CONFIG, want, pods, NOW))) == {"stale", "extra"}


def test_functions_no_generic_pod_fits_get_a_dedicated_pool() -> None:
    catalog = catalog_from_objects([active_function(memorySize=4096)], [], [])
    want = demand(CONFIG, catalog, {"default"})
    assert list(want.dedicated.values()) == [DedicatedDemand("default", "hello", BIG, 1)]
    owner = {"kind": "Function", "name": "hello"}
    result = plan(CONFIG, want, [pod("a"), pod("b")], NOW, {("default", "hello"): owner})
    (request,) = result.create
    assert (request.pool, request.function, request.shape, request.owner) == (
        "function",
        "hello",
        BIG,
        owner,
    )


POOL_STATES = st.sampled_from(["warm", "claimed", "released"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(POOL_STATES, st.booleans(), st.sampled_from(["Running", "Pending", "Failed"])),
        max_size=8,
    ),
    st.integers(min_value=0, max_value=4),
)
def test_after_applying_a_plan_the_pool_is_exactly_its_size(
    observed: list[tuple[str, bool, str]], size: int
) -> None:
    want = wanted(generic={("default", "python3.12"): size})
    pods = [
        pod(f"p{i}", state=state, ready=ready, phase=phase, claim_renewed=NOW, function="hello")
        for i, (state, ready, phase) in enumerate(observed)
    ]
    result = plan(CONFIG, want, pods, NOW)
    gone = {p.name for p, _ in result.delete}
    survivors = [p for p in pods if p.name not in gone]
    free = [p for p in survivors if p.state == "warm"]
    assert len(free) + len(result.create) == size
    assert all(p.phase != "Failed" and p.state != "released" for p in survivors)
    # Planning again over the outcome changes nothing.
    made = [pod(f"new{i}", created=NOW) for i in range(len(result.create))]
    again = plan(CONFIG, want, survivors + made, NOW)
    assert again.create == [] and again.delete == []


def test_free_pods_on_a_notready_node_are_deleted_and_replaced() -> None:
    dead = pod("dead", node="n1", node_ready=False)  # its own Ready condition still True
    result = plan(CONFIG, wanted(), [dead, pod("b", node="n2")], NOW)
    assert deleted(result) == {"dead": "its node n1 is not Ready"}
    assert len(result.create) == 1  # the pool is topped up, on whichever node is alive


def test_a_claimed_pod_on_a_notready_node_no_longer_counts_toward_provisioned() -> None:
    want = wanted(provisioned={"rev1": replace(PROV, count=1)}, generic={})
    claimed = pod(
        "held",
        pool="provisioned",
        state="claimed",
        revision="rev1",
        shape=PROV.shape.key,
        function="hello",
        claimed_by="gw",
        claim_renewed=NOW,
        node_ready=False,
    )
    result = plan(CONFIG, want, [claimed], NOW)
    assert [r.pool for r in result.create] == ["provisioned"]
    assert result.delete == []  # its gateway drops it; the claim is not the keeper's to break
    alive = plan(CONFIG, want, [replace(claimed, node_ready=True)], NOW)
    assert alive.create == []
