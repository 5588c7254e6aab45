"""What the catalog calls for, and that provisioned pods match what the gateway will ask for."""

from __future__ import annotations

from kubelambda.gateway.invoker import Invoker
from kubelambda.gateway.pool import EnvironmentPool
from kubelambda.kube.catalog import catalog_from_objects
from kubelambda.kube.contract import spec_revision
from kubelambda.operator.config import OperatorConfig
from kubelambda.operator.demand import demand
from kubelambda.runtime.spec import EnvironmentSpec
from kubelambda.serving.catalog import FunctionVersion
from tests.unit.operator.docs import active_function, alias, published

CONFIG = OperatorConfig(agent_image="img:1", warm_pool={"python3.12": 2, "python3.13": 0})


def with_status(doc: dict[str, object], **status: object) -> dict[str, object]:
    return {**doc, "status": {"state": "Active", **status}}


def catalog_with_provisioning() -> object:
    fn = active_function()
    v1 = published("hello-1", 1)
    v1["spec"]["function"] = fn["spec"]
    v1["spec"]["provisionedConcurrency"] = 1
    v2 = published("hello-2", 2)
    v2["spec"]["function"] = fn["spec"]
    live = with_status(alias("live", provisionedConcurrency=2))
    return catalog_from_objects([fn], [v1, v2], [live])


def test_generic_pools_per_served_namespace_and_runtime() -> None:
    want = demand(CONFIG, catalog_from_objects([], [], []), {"default", "team-a"})
    assert want.generic == {("default", "python3.12"): 2, ("team-a", "python3.12"): 2}


def test_provisioned_counts_add_versions_and_aliases() -> None:
    want = demand(CONFIG, catalog_with_provisioning(), {"default"})  # type: ignore[arg-type]
    (only,) = want.provisioned.values()
    assert (only.function, only.version, only.count) == ("hello", "1", 3)
    assert want.functions == {("default", "hello")}
    assert want.problems == []


def test_provisioned_pods_carry_exactly_the_spec_the_gateway_asks_for() -> None:
    catalog = catalog_with_provisioning()
    want = demand(CONFIG, catalog, {"default"})  # type: ignore[arg-type]
    (only,) = want.provisioned.values()
    invoker = Invoker(EnvironmentPool(provider=None))  # type: ignore[arg-type]
    version: FunctionVersion = catalog.functions[("default", "hello")].versions["1"]  # type: ignore[attr-defined]
    asked = invoker.spec_for(version, "provisioned-concurrency")
    assert spec_revision(asked) == only.revision
    assert EnvironmentSpec.model_validate_json(only.spec_json) == asked
    assert asked.initialization_type == "provisioned-concurrency"


def test_functions_that_are_not_active_are_not_served() -> None:
    failed = active_function()
    failed["status"]["state"] = "Failed"
    assert catalog_from_objects([failed], [], []).functions == {}
