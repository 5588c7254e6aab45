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
