"""Which pods a gateway may claim, and the patches that claim, renew and release them."""

from __future__ import annotations

import random
from dataclasses import replace

from kubelambda.kube import claims
from kubelambda.kube import contract as c
from kubelambda.kube.contract import PodInfo
from kubelambda.serving.shape import PodShape, placement_items

SMALL = PodShape("python3.12", 128, 512)
WANT = claims.Want("default", "hello", "python3.12", SMALL)


def pod(name: str, **kw: object) -> PodInfo:
    base = PodInfo(
        name=name,
        namespace="default",
        pool="generic",
        runtime="python3.12",
        state="warm",
        shape="s",
        created=0.0,
        ready=True,
        phase="Running",
        ip="127.0.3.4",
        resource_version="41",
        memory=512,
        ephemeral=512,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_a_warm_generic_pod_that_fits_matches() -> None:
    assert claims.matches(pod("a"), WANT)


def test_pods_that_cannot_serve_do_not_match() -> None:
    for bad in (
        pod("other-ns", namespace="team-a"),
        pod("not-ready", ready=False),
        pod("on-a-dead-node", node_ready=False),  # its own Ready not yet flipped
        pod("no-ip", ip=None),
        pod("deleting", deleting=True),
        pod("pending", phase="Pending"),
        pod("claimed", state="claimed"),
        pod("released", state="released"),
        pod("other-runtime", runtime="python3.13"),
        pod("too-small", memory=64),
        pod("short-tmp", ephemeral=256),
        pod("provisioned", pool="provisioned", state="ready"),
    ):
        assert not claims.matches(bad, WANT), bad.name


def test_special_shapes_only_take_their_dedicated_pool() -> None:
    shape = PodShape("python3.12", 128, 512, role="reader", placement=placement_items({"x": 1}))
    want = claims.Want("default", "hello", "python3.12", shape)
    assert not want.generic
    assert not claims.matches(pod("generic"), want)
    dedicated = pod("dedicated", pool="function", function="hello", shape=shape.key)
    assert claims.matches(dedicated, want)
    assert not claims.matches(replace(dedicated, function="other"), want)
    arm = claims.Want("default", "hello", "python3.12", replace(SMALL, architecture="arm64"))
    assert not claims.matches(pod("x86"), arm)


def test_provisioned_calls_take_ready_pods_of_their_revision_only() -> None:
    want = replace(WANT, revision="r1")
    ready = pod("p", pool="provisioned", state="ready", revision="r1")
    assert claims.matches(ready, want)
    assert not claims.matches(replace(ready, revision="r2"), want)
    assert not claims.matches(replace(ready, state="claimed"), want)
    assert not claims.matches(pod("generic"), want)


def test_candidates_skip_tried_pods_and_are_shuffled() -> None:
    pods = [pod(f"p{i}") for i in range(20)]
    found = claims.candidates(pods, WANT, {"p0", "p1"}, random.Random(1))
    assert {p.name for p in found} == {f"p{i}" for i in range(2, 20)}
    assert [p.name for p in found] != [f"p{i}" for i in range(2, 20)]


def test_the_claim_patch_is_preconditioned_on_the_seen_resource_version() -> None:
    patch = claims.claim_patch(pod("a"), "gw-a", "hello", "$LATEST", "rev", 1000.5)
    meta = patch["metadata"]
    assert meta["resourceVersion"] == "41"
    assert meta["labels"] == {
        c.STATE: "claimed",
        c.CLAIMED_BY: "gw-a",
        c.FUNCTION: "hello",
        c.VERSION: "LATEST",
        c.REVISION: "rev",
    }
    assert meta["annotations"][c.CLAIM_RENEWED] == "1000.500"
    # A list of one empty entry is the apiserver's way to clear managedFields (an empty list
    # would leave them as they are).
    assert meta["managedFields"] == [{}]


def test_renew_and_release_patches() -> None:
    renew = claims.renew_patch(2000.0, 1990.0)["metadata"]["annotations"]
    assert renew == {c.CLAIM_RENEWED: "2000.000", c.LAST_USED: "1990.000"}
    assert claims.release_patch() == {"metadata": {"labels": {c.STATE: "released"}}}


def test_pod_info_reads_a_pod_manifest() -> None:
    manifest = {
        "metadata": {
            "name": "kl-1",
            "namespace": "default",
            "resourceVersion": "9",
            "creationTimestamp": "2027-01-01T00:00:00Z",
            "labels": {c.POOL: "generic", c.RUNTIME: "python3.12", c.STATE: "warm", c.SHAPE: "s"},
            "annotations": {c.MEMORY: "512", c.EPHEMERAL: "1024", c.CLAIM_RENEWED: "oops"},
        },
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.9",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    info = PodInfo.from_pod(manifest)
    assert (info.pool, info.state, info.ready, info.ip) == ("generic", "warm", True, "127.0.0.9")
    assert (info.memory, info.ephemeral, info.claim_renewed) == (512, 1024, None)
    assert info.created == 1798761600.0
    assert info.node is None and info.node_ready and info.serving
    manifest["spec"] = {"nodeName": "n1"}
    assert PodInfo.from_pod(manifest).node == "n1"


def test_a_node_is_ready_only_when_its_ready_condition_is_true() -> None:
    def node(status: str | None) -> dict[str, object]:
        kinds = [{"type": "MemoryPressure", "status": "False"}]
        if status is not None:
            kinds.append({"type": "Ready", "status": status})
        return {"metadata": {"name": "n1"}, "status": {"conditions": kinds}}

    assert c.node_ready(node("True"))
    for dead in ("False", "Unknown", None):
        assert not c.node_ready(node(dead)), dead


def test_a_claimed_pod_serves_while_running_ready_and_not_deleted() -> None:
    ready = {"type": "Ready", "status": "True"}
    good = {"metadata": {"name": "a"}, "status": {"phase": "Running", "conditions": [ready]}}
    assert claims.serving(good) and PodInfo.from_pod(good).ready
    not_ready = {"type": "Ready", "status": "False"}
    for bad in (
        {**good, "metadata": {"deletionTimestamp": "2026-12-01T00:00:00Z"}},
        {"status": {"phase": "Succeeded", "conditions": [ready]}},
        {"status": {"phase": "Running", "conditions": [not_ready]}},  # its node stopped
        {"status": {"phase": "Running"}},
        {},
    ):
        assert not claims.serving(bad), bad
