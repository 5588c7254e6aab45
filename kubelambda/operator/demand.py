"""What pods the served functions call for: warm pools, dedicated pools, provisioned pods. Pure.

From the catalog (the same `build_catalog` the gateway serves from) and the configuration:

- a generic warm pool per runtime in each served namespace (`--warm-pool`);
- a small dedicated pool for each function version whose shape (memory, storage, architecture,
  role, placement) no generic pod fits;
- for provisioned concurrency, N pods specialized at start with exactly the `EnvironmentSpec`
  the gateway would build (the same `SpecBuilder`), so the gateway can match them by its
  revision. As in the gateway's admission, a version's count is the sum of its own
  provisionedConcurrency and that of the aliases pointing at it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubelambda.kube.contract import spec_revision
from kubelambda.operator.config import OperatorConfig
from kubelambda.serving.catalog import Catalog, FunctionVersion
from kubelambda.serving.errors import LambdaError
from kubelambda.serving.shape import PodShape, shape_of
from kubelambda.serving.specs import CodeResolver, SpecBuilder


@dataclass(frozen=True)
class ProvisionedDemand:
    namespace: str
    function: str
    version: str
    revision: str
    count: int
    shape: PodShape
    spec_json: str


@dataclass(frozen=True)
class DedicatedDemand:
    namespace: str
    function: str
    shape: PodShape
    count: int


@dataclass
class Demand:
    generic: dict[tuple[str, str], int]  # (namespace, runtime) -> warm pods
    dedicated: dict[tuple[str, str, str], DedicatedDemand]  # (ns, function, shape key)
    provisioned: dict[str, ProvisionedDemand]  # revision -> demand
    functions: set[tuple[str, str]]  # every (namespace, function) that exists
    problems: list[str]


def servable(version: FunctionVersion) -> bool:
    if version.spec.package_type == "Image":  # its pods run the function's own image
        return version.spec.code.image is not None
    return version.spec.runtime is not None


def demand(
    config: OperatorConfig,
    catalog: Catalog,
    namespaces: set[str],
    resolve: CodeResolver | None = None,
) -> Demand:
    """`namespaces`: where generic pools live (the served ones, or those with functions);
    `resolve`: code from ConfigMaps, as the gateway resolves it."""
    generic = {
        (ns, runtime): size
        for ns in namespaces
        for runtime, size in config.warm_pool.items()
        if size > 0
    }
    # As the cluster gateway builds specs: pods run Image packages, code comes from ConfigMaps.
    specs = SpecBuilder(region=config.region, images=True, resolve=resolve)
    dedicated: dict[tuple[str, str, str], DedicatedDemand] = {}
    provisioned: dict[str, ProvisionedDemand] = {}
    problems: list[str] = []
    counts: dict[tuple[str, str, str], int] = {}
    for entry in catalog.functions.values():
        for version in (entry.latest, *entry.versions.values()):
            if not servable(version):
                continue
            shape = shape_of(version.spec)
            if not shape.fits_in(config.generic_shape(shape.runtime)) and config.function_warm:
                key = (entry.namespace, entry.name, shape.key)
                dedicated[key] = DedicatedDemand(
                    entry.namespace, entry.name, shape, config.function_warm
                )
        for number, count in entry.provisioned_versions.items():
            counts[(entry.namespace, entry.name, number)] = (
                counts.get((entry.namespace, entry.name, number), 0) + count
            )
        for alias in entry.aliases.values():
            if alias.provisioned:
                key3 = (entry.namespace, entry.name, alias.function_version)
                counts[key3] = counts.get(key3, 0) + alias.provisioned
    for (ns, name, number), count in sorted(counts.items()):
        target = catalog.functions[(ns, name)].versions.get(number)
        if target is None or not servable(target):
            continue
        try:
            spec = specs.spec(target, "provisioned-concurrency")
        except LambdaError as exc:
            problems.append(f"{ns}/{name}:{number}: cannot provision: {exc.message}")
            continue
        revision = spec_revision(spec)
        provisioned[revision] = ProvisionedDemand(
            ns,
            name,
            number,
            revision,
            count,
            shape_of(target.spec),
            spec.model_dump_json(by_alias=True),
        )
    return Demand(generic, dedicated, provisioned, set(catalog.functions), problems)
