"""helm lint and helm template of the chart, and strict validation of every rendered object.

Each values scenario (defaults, every optional feature on, a namespaced SigV4 install) is linted,
rendered with its CRDs, and every object is validated with kubernetes-validate in strict mode
(unknown fields fail) for Kubernetes 1.30 and the newest version kubernetes-validate knows.
Kinds that come from other projects' CRDs are validated against tests/chart/extra_schemas.py.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils

from tests.chart.chart_helpers import (
    CHART,
    RELEASE,
    RELEASE_NAMESPACE,
    REPO,
    SCENARIOS,
    Manifest,
    containers,
    find,
    of_kind,
    parse,
    pod_specs,
    render_scenario,
    run_helm,
    template,
    values_args,
)
from tests.chart.extra_schemas import EXTRA_SCHEMAS

OLDEST_SUPPORTED = "1.30"
NEWEST_KNOWN = kv_utils.latest_version()
METRICS = (
    "kubelambda_invocations_total",
    "kubelambda_errors_total",
    "kubelambda_throttles_total",
    "kubelambda_duration_seconds",
    "kubelambda_init_duration_seconds",
    "kubelambda_concurrent_executions",
    "kubelambda_async_events_received_total",
    "kubelambda_async_event_age_seconds",
    "kubelambda_async_events_dropped_total",
    "kubelambda_destination_delivery_failures_total",
)


def strict_validate(doc: Manifest, version: str) -> None:
    """Validate one object strictly; raise on any error, including an unknown kind."""
    extra = EXTRA_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if extra is not None:
        jsonschema.Draft202012Validator(extra).validate(doc)
        return
    kubernetes_validate.validate(doc, version, strict=True)


def describe(doc: Manifest) -> str:
    meta = doc.get("metadata", {})
    return f"{doc.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_helm_lint_passes_strictly(name: str) -> None:
    result = run_helm(["lint", "--strict", str(CHART), *values_args(SCENARIOS[name])])
    assert result.returncode == 0, result.output
    assert "0 chart(s) failed" in result.output


@pytest.mark.parametrize("version", [OLDEST_SUPPORTED, NEWEST_KNOWN])
def test_every_rendered_object_is_strictly_valid(manifests: list[Manifest], version: str) -> None:
    errors: list[str] = []
    for doc in manifests:
        try:
            strict_validate(doc, version)
        except kv_utils.SchemaNotFoundError as exc:
            errors.append(f"{describe(doc)}: no schema ({exc.message}); add one to extra_schemas")
        except jsonschema.ValidationError as exc:
            path = "/".join(str(p) for p in exc.absolute_path)
            errors.append(f"{describe(doc)} at /{path}: {exc.message}")
    assert not errors, f"invalid for Kubernetes {version}:\n" + "\n".join(errors)


def test_newest_known_version_is_newer_than_the_oldest_supported() -> None:
    newest = tuple(int(part) for part in NEWEST_KNOWN.split(".")[:2])
    assert newest > (1, 30)


def test_strict_validation_rejects_an_unknown_field() -> None:
    """The validation above is strict: a typo in a container fails it."""
    deployment = copy.deepcopy(find(render_scenario("defaults"), "Deployment", "-gateway"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    for version in (OLDEST_SUPPORTED, NEWEST_KNOWN):
        with pytest.raises(jsonschema.ValidationError):
            strict_validate(deployment, version)
    monitor = copy.deepcopy(of_kind(render_scenario("all-features"), "ServiceMonitor")[0])
    monitor["spec"]["endpoints"][0]["intervall"] = "10s"
    with pytest.raises(jsonschema.ValidationError):
        strict_validate(monitor, NEWEST_KNOWN)


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["type"] == "application"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert chart["appVersion"] == pyproject["project"]["version"], (
        "Chart appVersion must equal the package version (the default image tag)"
    )


def test_all_optional_features_render() -> None:
    kinds = {doc["kind"] for doc in render_scenario("all-features")}
    for kind in (
        "Ingress",
        "HTTPRoute",
        "ServiceMonitor",
        "PodMonitor",
        "StatefulSet",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "CustomResourceDefinition",
    ):
        assert kind in kinds, f"{kind} missing from the all-features render"
    dashboards = [
        d
        for d in of_kind(render_scenario("all-features"), "ConfigMap")
        if "kubelambda.json" in d["data"]
    ]
    assert len(dashboards) == 1
    assert dashboards[0]["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_defaults_render_no_optional_objects() -> None:
    docs = render_scenario("defaults")
    kinds = {doc["kind"] for doc in docs}
    assert not kinds & {
        "Ingress",
        "HTTPRoute",
        "ServiceMonitor",
        "PodMonitor",
        "PersistentVolumeClaim",
    }
    # Two gateways share the async queue: the default is the chart's own NATS JetStream.
    assert find(docs, "StatefulSet", "-nats")
    sqlite = parse(template(sets=["queue.backend=sqlite", "gateway.replicas=1"]).stdout)
    assert of_kind(sqlite, "PersistentVolumeClaim"), "the SQLite queue needs a volume"
    assert "--queue=sqlite:///var/lib/kubelambda/queue.db" in _args(sqlite, "gateway")


def test_two_gateways_share_one_ledger_by_default() -> None:
    docs = render_scenario("defaults")
    gateway = find(docs, "Deployment", "-gateway")
    assert gateway["spec"]["replicas"] == 2
    assert f"--ledger-namespace={RELEASE_NAMESPACE}" in _args(docs, "gateway")
    pdb = find(docs, "PodDisruptionBudget", "-gateway")
    assert pdb["spec"]["maxUnavailable"] == 1  # one of the two stays through a drain
    role = find(docs, "Role", "-gateway-ledger")
    assert role["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "create", "update", "patch", "delete"],
        }
    ]
    binding = find(docs, "RoleBinding", "-gateway-ledger")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert (
        binding["subjects"][0]["name"] == gateway["spec"]["template"]["spec"]["serviceAccountName"]
    )


def _args(docs: list[Manifest], component: str) -> list[str]:
    deployment = find(docs, "Deployment", f"-{component}")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args: list[str] = container["args"]
    assert container.get("command") is None, "the image's entry point (kubelambda) must be used"
    return args


def test_gateway_command_line_follows_the_contract() -> None:
    args = _args(render_scenario("defaults"), "gateway")
    assert args[:2] == ["gateway", "--cluster"]
    for flag in (
        "--host=0.0.0.0",
        "--port=9000",
        "--default-namespace=default",
        "--namespace=default",
        "--concurrency-limit=1000",
        "--unreserved-floor=100",
        "--idle-keepalive=300",
        f"--queue=nats://{RELEASE}-kubelambda-nats.{RELEASE_NAMESPACE}.svc:4222",
        "--auth=sigv4",
        "--sigv4-secret=kl-kubelambda-sigv4",
        "--url-domain=lambda-url.localhost",
    ):
        assert flag in args, f"{flag} missing from {args}"
    all_args = _args(render_scenario("all-features"), "gateway")
    assert f"--queue=nats://{RELEASE}-kubelambda-nats.{RELEASE_NAMESPACE}.svc:4222" in all_args
    assert "--auth=kubernetes" in all_args
    assert not [a for a in all_args if a.startswith("--namespace=")], (
        "all namespaces: no --namespace"
    )
    sigv4_args = _args(render_scenario("namespaced-sigv4"), "gateway")
    assert "--sigv4-secret=kubelambda-sigv4-keys" in sigv4_args
    assert "--queue=nats://nats.messaging.svc:4222" in sigv4_args


def test_operator_command_line_follows_the_contract() -> None:
    args = _args(render_scenario("defaults"), "operator")
    assert args[0] == "operator"
    assert "--namespace=default" in args
    assert "--leader-election=kl-kubelambda-operator" in args
    assert "--leader-election-namespace=kubelambda-system" in args
    assert "--agent-image=kubelambda/kubelambda:0.1.0" in args
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for runtime, spec in values["runtimes"].items():
        assert f"--runtime-image={runtime}={spec['image']}" in args
        assert f"--warm-pool={runtime}={spec['warmPool']}" in args
    assert "--idle-keepalive=300" in args and "--liveness-port=8080" in args
    assert any(re.fullmatch(r"--max-age=\d+", a) for a in args)
    # Function pods (issue 16): the sidecar's share, CPU requested but not capped, probes.
    for flag in ("--agent-memory=128", "--agent-cpu=100", "--readiness-period=2"):
        assert flag in args, f"{flag} missing from {args}"
    assert "--start-timeout=120" in args and "--cpu-limits" not in args
    assert "--refill-delay=0.5" in args
    result = template(
        sets=[
            "functionPods.cpuLimits=true",
            "functionPods.agent.memoryMiB=256",
            "warmPoolRefillDelaySeconds=0",
        ]
    )
    assert result.returncode == 0, result.output
    capped = _args(parse(result.stdout), "operator")
    assert "--cpu-limits" in capped and "--agent-memory=256" in capped
    assert "--refill-delay=0" in capped
    assert not [a for a in args if a.startswith("--assumable-role")]
    roles = template(sets=["functionRoles={default/runner,batch}"])
    assert roles.returncode == 0, roles.output
    listed = _args(parse(roles.stdout), "operator")
    assert "--assumable-role=default/runner" in listed and "--assumable-role=batch" in listed
    bad = template(sets=["functionRoles={Not/A/Name}"])
    assert bad.returncode != 0 and "functionRoles" in bad.output, bad.output
    everywhere = _args(render_scenario("all-features"), "operator")
    assert "--all-namespaces" in everywhere and "--standalone" not in everywhere


def _container_port(container: Manifest, name_or_number: Any) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    port: int = ports[name_or_number]
    return port


def test_probes(manifests: list[Manifest]) -> None:
    gateway = find(manifests, "Deployment", "-gateway")["spec"]["template"]["spec"]
    container = gateway["containers"][0]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert _container_port(container, get["port"]) == 9000
    operator = find(manifests, "Deployment", "-operator")["spec"]["template"]["spec"]
    liveness = operator["containers"][0]["livenessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz"
    assert _container_port(operator["containers"][0], liveness["port"]) == 8080


def test_every_container_has_requests_and_limits(manifests: list[Manifest]) -> None:
    for owner, spec in pod_specs(manifests):
        for container in containers(spec):
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), (
                    f"{owner}/{container['name']}: resources.{kind} needs cpu and memory"
                )


def test_operator_replicas_elect_a_leader_so_rollouts_need_no_recreate() -> None:
    operator = find(render_scenario("defaults"), "Deployment", "-operator")
    assert operator["spec"]["replicas"] == 1
    assert "strategy" not in operator["spec"]  # a new replica stands by until the Lease is free
    standbys = find(render_scenario("all-features"), "Deployment", "-operator")
    assert standbys["spec"]["replicas"] == 2


def test_pod_disruption_budgets_select_their_pods() -> None:
    docs = render_scenario("defaults")
    budgets = of_kind(docs, "PodDisruptionBudget")
    assert len(budgets) == 2
    for component in ("operator", "gateway"):
        pdb = find(docs, "PodDisruptionBudget", f"-{component}")
        labels = find(docs, "Deployment", f"-{component}")["spec"]["template"]["metadata"]["labels"]
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()


def test_the_pod_monitor_scrapes_the_pollers() -> None:
    docs = render_scenario("all-features")
    monitor = of_kind(docs, "PodMonitor")[0]
    template = find(docs, "Deployment", "-poller")["spec"]["template"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    )
    ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports


def test_dashboard_shows_every_metric() -> None:
    from kubelambda.sources.metrics import SourceMetrics

    dashboard = json.loads((CHART / "dashboards" / "kubelambda.json").read_text())
    exprs = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])
    # The pollers' metrics as the code registers them (a counter's samples add `_total`).
    pollers = [m.name for m in SourceMetrics().registry.collect()]
    assert len(pollers) == 8
    for metric in (*METRICS, *pollers):
        assert metric in exprs, f"{metric} is on no dashboard panel"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"namespace", "function", "version", "alias", "mapping"} <= variables


def test_notes_tell_how_to_invoke_the_first_function() -> None:
    result = run_helm(
        ["install", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE, "--dry-run=client"]
    )
    assert result.returncode == 0, result.output
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl port-forward -n {RELEASE_NAMESPACE} svc/{RELEASE}-kubelambda-gateway" in notes
    assert (
        "aws lambda invoke --endpoint-url http://127.0.0.1:9000 --function-name hello out.json"
        in notes
    )
    assert "kind: Function" in notes


def test_image_digest_pins_the_image() -> None:
    digest = "sha256:" + "ab" * 32
    result = template(sets=[f"image.digest={digest}"])
    assert result.returncode == 0, result.output
    images = {
        c["image"] for _, spec in pod_specs(yaml_docs(result.stdout)) for c in containers(spec)
    }
    ours = {i for i in images if i.startswith("kubelambda/")}
    assert ours == {f"kubelambda/kubelambda@{digest}"}
    # The bundled NATS (the default queue) has its own image and digest value.
    assert all(i.startswith("nats:") for i in images - ours), images


def yaml_docs(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def test_the_pollers_gateway_url_defaults_to_the_service_and_can_be_set() -> None:
    def poller(sets: tuple[str, ...] = ()) -> Manifest:
        result = template(sets=sets)
        assert result.returncode == 0, result.output
        deployment = find(parse(result.stdout), "Deployment", "-poller")
        (container,) = containers(deployment["spec"]["template"]["spec"])
        return container

    default = poller()
    env = {e["name"]: e.get("value") for e in default["env"]}
    service = find(render_scenario("defaults"), "Service", "-gateway")
    port = service["spec"]["ports"][0]["port"]
    name = service["metadata"]["name"]
    want = f"http://{name}.{RELEASE_NAMESPACE}.svc:{port}"
    assert env["KUBELAMBDA_GATEWAY_URL"] == want
    assert not any(a.startswith("--gateway") for a in default["args"])
    assert default["readinessProbe"]["httpGet"]["path"] == "/readyz"
    pointed = poller(("poller.gatewayURL=http://10.0.0.7:9000",))
    env = {e["name"]: e.get("value") for e in pointed["env"]}
    assert env["KUBELAMBDA_GATEWAY_URL"] == "http://10.0.0.7:9000"
    refused = template(sets=("poller.gatewayURL=gateway:9000",))
    assert refused.returncode != 0 and "gatewayURL" in refused.output


def test_a_fresh_install_gets_a_generated_sigv4_key_and_its_rbac() -> None:
    import base64

    import yaml

    docs = render_scenario("defaults")
    [secret] = [
        d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].endswith("sigv4")
    ]
    keys = yaml.safe_load(base64.b64decode(secret["data"]["keys.yaml"]))["keys"]
    from kubelambda.gateway.auth.keys import KeySet

    [key] = KeySet.model_validate({"keys": keys}).keys  # the gateway accepts what it generates
    assert key.user == "kubelambda-admin" and key.groups == ["kubelambda:invokers"]
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    bindings = [
        d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-invoker")
    ]
    assert {b["metadata"]["namespace"] for b in bindings} == {"default"}
    assert bindings[0]["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "kubelambda:invokers"}
    ]
    [role] = [
        d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-invoker")
    ]
    assert role["rules"] == [
        {
            "apiGroups": ["kubelambda.dev"],
            "resources": ["functions"],
            "verbs": ["invoke", "get", "list"],
        }
    ]
    # a named Secret is used as it is: nothing generated
    named = render_scenario("namespaced-sigv4")
    assert not [
        d for d in named if d["kind"] == "Secret" and d["metadata"]["name"].endswith("sigv4")
    ]
