"""The resource types the emulated API server serves: a built-in table and CRD registration.

A `ResourceType` carries what discovery, URL routing, status isolation, generation and schema
validation need. Built-in kinds get no schema (the emulator does not validate them); a CRD's
served versions each become one `ResourceType` sharing one storage key, so an object written
through one version is readable through another (no conversion webhooks: fields are the same).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    # Whether metadata.generation is kept (custom resources and workload kinds with a spec).
    generation: bool = False
    schema: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    printer_columns: tuple[Mapping[str, Any], ...] = field(default=(), compare=False, hash=False)
    custom: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        """How messages name the resource: `pods`, `functions.kubelambda.dev`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_group(self) -> str:
        """How 422 messages name the kind: `Pod`, `Function.kubelambda.dev`."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def discovery(self) -> list[dict[str, Any]]:
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        main = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
            "shortNames": list(self.short_names),
            "categories": list(self.categories),
        }
        subs = [
            {
                "name": f"{self.plural}/{sub}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind if sub != "binding" else "Binding",
                "verbs": ["get", "patch", "update"] if sub != "binding" else ["create"],
            }
            for sub in sorted(self.subresources)
        ]
        return [main, *subs]


def _builtin(
    group_version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short: Iterable[str] = (),
    subresources: Iterable[str] = (),
    generation: bool = False,
    categories: Iterable[str] = (),
) -> ResourceType:
    group, _, version = group_version.rpartition("/")
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        short_names=tuple(short),
        subresources=frozenset(subresources),
        generation=generation,
        categories=tuple(categories),
    )


BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    _builtin(
        "v1", "namespaces", "Namespace", namespaced=False, short=["ns"], subresources=["status"]
    ),
    _builtin(
        "v1",
        "pods",
        "Pod",
        short=["po"],
        subresources=["status", "binding"],
        generation=True,
        categories=["all"],
    ),
    _builtin(
        "v1", "services", "Service", short=["svc"], subresources=["status"], categories=["all"]
    ),
    _builtin("v1", "endpoints", "Endpoints", short=["ep"]),
    _builtin("v1", "configmaps", "ConfigMap", short=["cm"]),
    _builtin("v1", "secrets", "Secret"),
    _builtin("v1", "serviceaccounts", "ServiceAccount", short=["sa"]),
    _builtin("v1", "events", "Event", short=["ev"]),
    _builtin("v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=["pvc"]),
    _builtin("v1", "nodes", "Node", namespaced=False, short=["no"], subresources=["status"]),
    _builtin("events.k8s.io/v1", "events", "Event", short=["ev"]),
    _builtin("coordination.k8s.io/v1", "leases", "Lease"),
    _builtin(
        "apps/v1",
        "deployments",
        "Deployment",
        short=["deploy"],
        subresources=["status", "scale"],
        generation=True,
        categories=["all"],
    ),
    _builtin(
        "apps/v1",
        "replicasets",
        "ReplicaSet",
        short=["rs"],
        subresources=["status", "scale"],
        generation=True,
    ),
    _builtin(
        "apps/v1",
        "statefulsets",
        "StatefulSet",
        short=["sts"],
        subresources=["status", "scale"],
        generation=True,
    ),
    _builtin("apps/v1", "daemonsets", "DaemonSet", short=["ds"], subresources=["status"]),
    _builtin("batch/v1", "jobs", "Job", subresources=["status"], generation=True),
    _builtin("batch/v1", "cronjobs", "CronJob", short=["cj"], subresources=["status"]),
    _builtin("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", short=["pdb"]),
    _builtin("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", short=["netpol"]),
    _builtin("networking.k8s.io/v1", "ingresses", "Ingress", short=["ing"]),
    _builtin("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    _builtin("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _builtin("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _builtin("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", namespaced=False),
    _builtin(
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
    ),
    _builtin(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short=["crd", "crds"],
        subresources=["status"],
    ),
)


def crd_resource_types(crd: Mapping[str, Any]) -> list[ResourceType]:
    """One `ResourceType` per served version of an apiextensions.k8s.io/v1 CRD."""
    spec = crd["spec"]
    names = spec["names"]
    types = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        types.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular", names["kind"].lower()),
                short_names=tuple(names.get("shortNames", ())),
                categories=tuple(names.get("categories", ())),
                subresources=frozenset((version.get("subresources") or {}).keys()),
                generation=True,
                schema=schema,
                printer_columns=tuple(version.get("additionalPrinterColumns", ())),
                custom=True,
            )
        )
    return types
