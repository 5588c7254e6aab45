"""Security properties of every rendering of the chart: RBAC, pod security, images, policies.

The RBAC checks follow the bindings: a ServiceAccount's permissions are the union of the rules of
every Role and ClusterRole bound to it, so a rule added under another name is still caught.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import pytest
import yaml

from tests.chart.chart_helpers import (
    RELEASE,
    RELEASE_NAMESPACE,
    Manifest,
    containers,
    of_kind,
    parse,
    pod_specs,
    render_scenario,
    template,
)

OPERATOR_SA = f"{RELEASE}-kubelambda-operator"
GATEWAY_SA = f"{RELEASE}-kubelambda-gateway"
KINDS = ("functions", "versions", "aliases", "eventsourcemappings")

# (apiGroup, resource, verb, resourceName or "") granted to a ServiceAccount
Grant = tuple[str, str, str, str]


def grants(docs: Sequence[Manifest], service_account: str) -> set[Grant]:
    """Every permission bound to a ServiceAccount of the release namespace."""
    roles = {
        (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc
        for doc in of_kind(docs, "Role", "ClusterRole")
    }
    found: set[Grant] = set()
    for binding in of_kind(docs, "RoleBinding", "ClusterRoleBinding"):
        subjects = binding.get("subjects", [])
        if not any(
            s["kind"] == "ServiceAccount"
            and s["name"] == service_account
            and s.get("namespace") == RELEASE_NAMESPACE
            for s in subjects
        ):
            continue
        ref = binding["roleRef"]
        namespace = None if ref["kind"] == "ClusterRole" else binding["metadata"]["namespace"]
        role = roles.get((ref["kind"], namespace, ref["name"]))
        assert role is not None, f"{binding['metadata']['name']} binds a missing {ref}"
        for rule in role.get("rules", []):
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames") or [""]:
                            found.add((group, resource, verb, name))
    return found


def expected_operator_grants(values: Mapping[str, object]) -> set[Grant]:
    expected: set[Grant] = set()
    for kind in KINDS:
        expected |= {("kubelambda.dev", kind, v, "") for v in ("get", "list", "watch", "patch")}
        expected |= {("kubelambda.dev", f"{kind}/status", v, "") for v in ("get", "patch")}
    expected |= {("", "pods", v, "") for v in ("create", "delete", "get", "list", "watch", "patch")}
    expected |= {("kubelambda.dev", kind, "create", "") for kind in ("versions", "aliases")}
    expected |= {
        ("", "events", "create", ""),
        ("", "configmaps", "get", ""),
        ("", "serviceaccounts", "get", ""),  # a role must opt in; no Secrets at all
    }
    expected |= {
        ("apiextensions.k8s.io", "customresourcedefinitions", v, "") for v in ("list", "watch")
    }
    expected |= {("", "namespaces", v, "") for v in ("list", "watch")}
    expected |= {("", "nodes", v, "") for v in ("list", "watch")}  # NotReady nodes' pods
    expected.add(("coordination.k8s.io", "leases", "create", ""))
    expected.add(("rbac.authorization.k8s.io", "clusterroles", "get", f"{OPERATOR_SA}-cluster"))
    expected |= {("coordination.k8s.io", "leases", v, OPERATOR_SA) for v in ("get", "update")}
    return expected


def expected_gateway_grants(values: Mapping[str, object]) -> set[Grant]:
    expected: set[Grant] = set()
    for kind in KINDS:
        # read for routing; written by the control API (CreateFunction, PublishVersion, ...)
        verbs = ("get", "list", "watch", "create", "update", "delete")
        expected |= {("kubelambda.dev", kind, v, "") for v in verbs}
    expected |= {("", "pods", v, "") for v in ("get", "list", "watch", "patch")}
    # function code, handed to the agent; layer versions the control API records
    expected |= {("", "configmaps", v, "") for v in ("get", "list", "create", "update")}
    expected.add(("", "secrets", "get", ""))  # secretKeyRefs, handed to the agent only
    if values.get("codeStoreSecret"):  # the keys agents get for code in the code store
        expected.add(("", "secrets", "get", str(values["codeStoreSecret"])))
    expected |= {
        ("apiextensions.k8s.io", "customresourcedefinitions", v, "") for v in ("list", "watch")
    }
    expected |= {("", "namespaces", v, "") for v in ("list", "watch")}
    expected |= {("", "nodes", v, "") for v in ("list", "watch")}  # NotReady nodes' pods
    # The replicas' shared concurrency ledger (Leases in the release namespace).
    expected |= {
        ("coordination.k8s.io", "leases", v, "")
        for v in ("get", "list", "create", "update", "patch", "delete")
    }
    if values["auth"] != "none":  # every mode asks RBAC (SubjectAccessReview)
        expected |= {
            ("authorization.k8s.io", "subjectaccessreviews", "create", ""),
            # the control API acts as the authenticated caller: their RBAC decides
            ("", "users", "impersonate", ""),
            ("", "groups", "impersonate", ""),
            ("", "serviceaccounts", "impersonate", ""),
        }
    if values["auth"] == "kubernetes":
        expected.add(("authentication.k8s.io", "tokenreviews", "create", ""))
    if values["auth"] == "sigv4":
        expected.add(("", "secrets", "get", str(values["sigv4Secret"])))
    return expected


SCENARIO_FACTS: dict[str, dict[str, object]] = {
    "defaults": {
        "namespaced": True,
        "auth": "sigv4",
        "sigv4Secret": "kl-kubelambda-sigv4",  # generated by the chart
    },
    "all-features": {
        "namespaced": False,
        "auth": "kubernetes",
        "sigv4Secret": "",
        "codeStoreSecret": "code-store-keys",
    },
    "namespaced-sigv4": {
        "namespaced": True,
        "auth": "sigv4",
        "sigv4Secret": "kubelambda-sigv4-keys",
    },
}


def test_no_wildcards_in_any_role(manifests: list[Manifest]) -> None:
    roles = of_kind(manifests, "Role", "ClusterRole")
    assert roles, "the chart renders no RBAC"
    for role in roles:
        assert "aggregationRule" not in role
        for rule in role.get("rules", []):
            for field in ("verbs", "resources", "apiGroups", "resourceNames", "nonResourceURLs"):
                for item in rule.get(field) or []:
                    assert "*" not in item, f"{role['metadata']['name']}: {field} has {item!r}"


def test_operator_role_is_exactly_what_it_needs(scenario: str, manifests: list[Manifest]) -> None:
    got = grants(manifests, OPERATOR_SA)
    assert got == expected_operator_grants(SCENARIO_FACTS[scenario]), (
        f"extra: {sorted(got - expected_operator_grants(SCENARIO_FACTS[scenario]))}; "
        f"missing: {sorted(expected_operator_grants(SCENARIO_FACTS[scenario]) - got)}"
    )


def test_gateway_role_is_exactly_what_it_needs(scenario: str, manifests: list[Manifest]) -> None:
    got = grants(manifests, GATEWAY_SA)
    expected = expected_gateway_grants(SCENARIO_FACTS[scenario])
    assert got == expected, f"extra: {sorted(got - expected)}; missing: {sorted(expected - got)}"


def test_gateway_cannot_create_or_delete_pods(manifests: list[Manifest]) -> None:
    pod_verbs = {
        verb for group, resource, verb, _ in grants(manifests, GATEWAY_SA) if resource == "pods"
    }
    assert pod_verbs, "the gateway must read pods"
    assert not pod_verbs & {"create", "delete", "deletecollection", "update"}, pod_verbs


def test_only_the_operator_creates_pods(manifests: list[Manifest]) -> None:
    creators = set()
    accounts = {sa["metadata"]["name"] for sa in of_kind(manifests, "ServiceAccount")}
    for account in accounts:
        if ("", "pods", "create", "") in grants(manifests, account):
            creators.add(account)
    assert creators == {OPERATOR_SA}


def test_secrets_are_get_only_for_the_gateway(manifests: list[Manifest]) -> None:
    verbs = {v for _, resource, v, _ in grants(manifests, GATEWAY_SA) if resource == "secrets"}
    # Reading the Secrets functions name needs `get`; it can never enumerate or watch them.
    assert verbs == {"get"}


def _restricted_violations(owner: str, spec: Manifest) -> Iterable[str]:
    pod_sc = spec.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            yield f"{owner}: {key}"
    for volume in spec.get("volumes", []):
        if "hostPath" in volume:
            yield f"{owner}: hostPath volume {volume['name']}"
    mounts_tmp_ok = False
    for container in containers(spec):
        where = f"{owner}/{container['name']}"
        sc = container.get("securityContext", {})
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            yield f"{where}: runAsNonRoot is not true"
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            yield f"{where}: runs as uid 0"
        if sc.get("allowPrivilegeEscalation") is not False:
            yield f"{where}: allowPrivilegeEscalation is not false"
        if sc.get("privileged"):
            yield f"{where}: privileged"
        caps = sc.get("capabilities", {})
        if caps.get("drop") != ["ALL"] or caps.get("add"):
            yield f"{where}: capabilities must drop ALL and add nothing, got {caps}"
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
        if seccomp.get("type") != "RuntimeDefault":
            yield f"{where}: seccompProfile is {seccomp}"
        if sc.get("readOnlyRootFilesystem") is not True:
            yield f"{where}: readOnlyRootFilesystem is not true"
        if any(m["mountPath"] == "/tmp" for m in container.get("volumeMounts", [])):
            mounts_tmp_ok = True
        else:
            yield f"{where}: no writable /tmp (emptyDir) with a read-only root filesystem"
    tmp_volumes = [v for v in spec.get("volumes", []) if v["name"] == "tmp"]
    if mounts_tmp_ok and not (tmp_volumes and "emptyDir" in tmp_volumes[0]):
        yield f"{owner}: /tmp is not an emptyDir"


def test_every_pod_meets_pod_security_restricted(manifests: list[Manifest]) -> None:
    specs = list(pod_specs(manifests))
    assert len(specs) >= 2
    problems = [p for owner, spec in specs for p in _restricted_violations(owner, spec)]
    assert not problems, "\n".join(problems)


def test_the_restricted_check_catches_a_violation() -> None:
    owner, spec = next(pod_specs(render_scenario("defaults")))
    spec = yaml.safe_load(yaml.safe_dump(spec))
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    assert any("allowPrivilegeEscalation" in p for p in _restricted_violations(owner, spec))


PINNED = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*|@sha256:[0-9a-f]{64})$")


def _images(docs: Sequence[Manifest]) -> set[str]:
    return {c["image"] for _, spec in pod_specs(docs) for c in containers(spec)}


def test_every_image_is_pinned(manifests: list[Manifest]) -> None:
    for image in _images(manifests):
        assert PINNED.match(image) and not image.endswith(":latest"), image


def test_every_image_comes_from_values() -> None:
    """With every image repository pointed at a mirror, no container keeps another image."""
    sets = [
        "image.repository=mirror.example/kl/kubelambda",
        "image.tag=9.9.9",
        "queue.backend=nats",
        "queue.nats.install=true",
        "queue.nats.image.repository=mirror.example/kl/nats",
        "queue.nats.image.tag=9.9.9",
    ]
    result = template(sets=sets)
    assert result.returncode == 0, result.output
    docs = parse(result.stdout)
    assert _images(docs) == {"mirror.example/kl/kubelambda:9.9.9", "mirror.example/kl/nats:9.9.9"}
    operator = next(spec for owner, spec in pod_specs(docs) if owner.endswith("-operator"))
    args = operator["containers"][0]["args"]
    assert "--agent-image=mirror.example/kl/kubelambda:9.9.9" in args
    mirrored = template(sets=[r"runtimes.python3\.12.image=mirror.example/lambda/python:3.12"])
    assert mirrored.returncode == 0, mirrored.output
    assert "--runtime-image=python3.12=mirror.example/lambda/python:3.12" in mirrored.stdout


def _matches(selector: Mapping[str, object], labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    match_labels = selector.get("matchLabels") or {}
    assert isinstance(match_labels, dict)
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    expressions = selector.get("matchExpressions") or []
    assert isinstance(expressions, list)
    for expr in expressions:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
    return True


FUNCTION_POD = {
    "app.kubernetes.io/part-of": "kubelambda",
    "kubelambda.dev/pool": "generic",
    "kubelambda.dev/runtime": "python3.12",
    "kubelambda.dev/state": "warm",
}


def _template_labels(docs: Sequence[Manifest], suffix: str) -> dict[str, str]:
    for doc in of_kind(docs, "Deployment"):
        if doc["metadata"]["name"].endswith(suffix):
            labels: dict[str, str] = doc["spec"]["template"]["metadata"]["labels"]
            return labels
    raise AssertionError(f"no Deployment *{suffix}")


@pytest.mark.parametrize("name", ["defaults", "all-features"])
def test_function_pods_admit_only_the_gateway_and_the_operator(name: str) -> None:
    """The gateway specializes and invokes; the operator retires a warm pod before deleting it."""
    docs = render_scenario(name)
    gateway = _template_labels(docs, "-gateway")
    operator = _template_labels(docs, "-operator")
    release_ns = {"kubernetes.io/metadata.name": RELEASE_NAMESPACE}
    other_ns = {"kubernetes.io/metadata.name": "elsewhere"}
    expected_namespaces = {"defaults": {"default"}, "all-features": {"apps", "team-a"}}[name]
    policies = [
        p
        for p in of_kind(docs, "NetworkPolicy")
        if _matches(p["spec"]["podSelector"], FUNCTION_POD)
    ]
    assert {p["metadata"]["namespace"] for p in policies} == expected_namespaces
    for policy in policies:
        spec = policy["spec"]
        assert not _matches(spec["podSelector"], gateway), "gateway pods are not function pods"
        assert not _matches(spec["podSelector"], {"app": "unrelated"})
        assert spec["policyTypes"] == ["Ingress"]
        peers = [peer for rule in spec["ingress"] for peer in rule["from"]]
        assert peers, "an ingress rule without `from` would admit everyone"

        def admitted(
            pod: Mapping[str, str], ns: Mapping[str, str], peers: list[Manifest] = peers
        ) -> bool:
            return any(
                _matches(p["podSelector"], pod) and _matches(p["namespaceSelector"], ns)
                for p in peers
            )

        assert admitted(gateway, release_ns) and admitted(operator, release_ns)
        assert not admitted(gateway, other_ns) and not admitted(operator, other_ns)
        assert not admitted(FUNCTION_POD, release_ns)
        ports = {p["port"] for rule in spec["ingress"] for p in rule["ports"]}
        assert ports == {8080}


def test_network_policies_can_be_turned_off() -> None:
    assert not of_kind(render_scenario("namespaced-sigv4"), "NetworkPolicy")


def test_pods_do_not_run_as_the_default_service_account(manifests: list[Manifest]) -> None:
    for owner, spec in pod_specs(manifests):
        assert spec.get("serviceAccountName") not in (None, "default"), owner
