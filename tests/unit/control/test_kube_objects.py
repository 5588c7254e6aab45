"""The cluster store's mapping between store calls and API requests. Pure."""

from __future__ import annotations

import pytest

from kubelambda.kube.client import ApiError
from kubelambda.kube.objects import from_configmap, path_of, store_error, to_configmap
from kubelambda.serving.catalog import Catalog
from kubelambda.serving.control.store import (
    AlreadyExists,
    Denied,
    Invalid,
    Missing,
    Stale,
    StoreError,
)


def test_paths() -> None:
    assert path_of("Function", "team", "hello") == (
        "/apis/kubelambda.dev/v1alpha1/namespaces/team/functions/hello"
    )
    assert path_of("EventSourceMapping", "team") == (
        "/apis/kubelambda.dev/v1alpha1/namespaces/team/eventsourcemappings"
    )
    assert (
        path_of("LayerVersion", "team", "layer-x-1")
        == "/api/v1/namespaces/team/configmaps/layer-x-1"
    )


def test_layer_records_round_trip_through_configmaps() -> None:
    record = {
        "kind": "LayerVersion",
        "metadata": {"name": "layer-words-1", "namespace": "team", "resourceVersion": "5"},
        "spec": {"layerName": "words", "version": 1, "sha256": "a" * 64, "size": 3},
    }
    configmap = to_configmap(record)
    assert configmap["metadata"]["labels"] == {"kubelambda.dev/layer-version": "true"}
    assert configmap["metadata"]["resourceVersion"] == "5"
    back = from_configmap(configmap)
    assert back["spec"] == record["spec"] and back["metadata"]["name"] == "layer-words-1"


@pytest.mark.parametrize(
    ("status", "creating", "kind"),
    [
        (409, True, AlreadyExists),
        (409, False, Stale),
        (404, False, Missing),
        (403, False, Denied),
        (422, False, Invalid),
        (500, False, StoreError),
    ],
)
def test_api_errors_become_store_errors(
    status: int, creating: bool, kind: type[StoreError]
) -> None:
    error = store_error(ApiError(status, {"message": "m"}, "PUT x"), "Function", "f", creating)
    assert type(error) is kind


def _catalog(spec: dict[str, object], versions: tuple[str, ...] = ()) -> Catalog:
    from kubelambda.api.resources import parse_resource
    from kubelambda.serving.catalog import build_catalog

    docs = [
        {
            "apiVersion": "kubelambda.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "hello", "namespace": "team"},
            "spec": spec,
        }
    ] + [
        {
            "apiVersion": "kubelambda.dev/v1alpha1",
            "kind": "Version",
            "metadata": {"name": f"hello-{n}", "namespace": "team"},
            "spec": {"functionName": "hello", "version": int(n), "function": spec},
        }
        for n in versions
    ]
    return build_catalog([parse_resource(d) for d in docs])


SPEC = {"runtime": "python3.12", "handler": "app.handler", "code": {"inline": {"app.py": "x"}}}
ACTIVE = {"state": "Active", "observedGeneration": 2}


def _function(spec: dict[str, object]) -> dict[str, object]:
    return {
        "kind": "Function",
        "metadata": {"name": "hello", "namespace": "team", "generation": 2},
        "spec": spec,
        "status": ACTIVE,
    }


def test_active_means_this_gateway_serves_it() -> None:
    from kubelambda.kube.objects import as_served
    from kubelambda.serving.control.states import function_state, version_state

    served = _catalog(SPEC, versions=("1",))
    assert function_state(as_served(_function(SPEC), served))["LastUpdateStatus"] == "Successful"
    newer = {**SPEC, "timeout": 9}
    assert function_state(as_served(_function(newer), served))["LastUpdateStatus"] == "InProgress"
    assert (
        function_state(as_served(_function(SPEC), _catalog({**SPEC, "handler": "b.c"}) and None))[
            "State"
        ]
        == "Active"
    )
    unknown = {
        **_function(SPEC),
        "metadata": {"name": "other", "namespace": "team", "generation": 1},
    }
    assert function_state(as_served(unknown, served))["State"] == "Pending"
    version = {
        "kind": "Version",
        "metadata": {"name": "hello-2", "namespace": "team"},
        "spec": {"functionName": "hello", "version": 2, "function": SPEC},
        "status": {"state": "Active", "version": 2},
    }
    assert version_state(as_served(version, served))["State"] == "Pending"
    version_one = {**version, "spec": {**version["spec"], "version": 1}}
    assert version_state(as_served(version_one, served))["State"] == "Active"


def _alias(version: str, weights: dict[str, float] | None = None) -> dict[str, object]:
    spec: dict[str, object] = {"functionName": "hello", "name": "live", "functionVersion": version}
    if weights:
        spec["routingConfig"] = {"additionalVersionWeights": weights}
    return {"kind": "Alias", "metadata": {"name": "hello-live", "namespace": "team"}, "spec": spec}


def _with_alias(alias: dict[str, object]) -> Catalog:
    from kubelambda.api.resources import parse_resource
    from kubelambda.serving.catalog import build_catalog

    docs = [
        {"kind": "Function", "metadata": {"name": "hello", "namespace": "team"}, "spec": SPEC},
        *(
            {
                "kind": "Version",
                "metadata": {"name": f"hello-{n}", "namespace": "team"},
                "spec": {"functionName": "hello", "version": n, "function": SPEC},
            }
            for n in (1, 2)
        ),
        alias,
    ]
    return build_catalog(
        [parse_resource({"apiVersion": "kubelambda.dev/v1alpha1", **d}) for d in docs]
    )


def test_an_alias_is_served_as_written_only_with_its_version_and_weights() -> None:
    from kubelambda.kube.objects import alias_route, routes_as_written

    written = alias_route(_alias("1", {"2": 0.1}))
    assert written == (("team", "hello", "live"), ("1", {"2": 0.1}))
    key, routing = written
    assert routes_as_written(_with_alias(_alias("1", {"2": 0.1})), key, routing)
    assert not routes_as_written(_with_alias(_alias("1")), key, routing)  # weights not yet
    assert not routes_as_written(_with_alias(_alias("2", {"1": 0.1})), key, routing)
    assert not routes_as_written(_catalog(SPEC, versions=("1", "2")), key, routing)  # no alias
    assert alias_route({"kind": "Alias", "metadata": {"name": "x"}, "spec": {}}) is None


async def test_settled_waits_for_the_catalog_to_route_a_written_alias() -> None:
    import asyncio

    from kubelambda.kube.objects import KubeObjects

    catalogs = [_catalog(SPEC, versions=("1", "2"))]
    backend = KubeObjects(None, lambda: catalogs[-1], alias_settle=30)  # type: ignore[arg-type]
    store = backend.acting_as(None)
    store._wrote("Alias", _alias("1", {"2": 0.1}))
    waiting = asyncio.create_task(backend.settled())
    await asyncio.sleep(0.2)
    assert not waiting.done()  # the catalog does not route it yet
    catalogs.append(_with_alias(_alias("1", {"2": 0.1})))  # the watch delivered it
    await asyncio.wait_for(waiting, timeout=5)
    assert backend.written == {}


async def test_settled_gives_up_after_its_bound_and_without_a_catalog() -> None:
    from kubelambda.kube.objects import KubeObjects

    stale = KubeObjects(None, lambda: _catalog(SPEC), alias_settle=0.1)  # type: ignore[arg-type]
    stale.acting_as(None)._wrote("Alias", _alias("1"))
    await stale.settled()  # returns: the write stands, the watch catches up later
    assert stale.written == {}
    outside = KubeObjects(None)  # type: ignore[arg-type]
    outside.acting_as(None)._wrote("Alias", _alias("1"))
    await outside.settled()
    assert outside.written == {}
