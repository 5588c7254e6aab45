"""The cluster store's mapping between store calls and API requests. Pure."""

from __future__ import annotations

import pytest

from kubelambda.kube.client import ApiError
from kubelambda.kube.objects import from_configmap, path_of, store_error, to_configmap
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
