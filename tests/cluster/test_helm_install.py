"""The chart, not just the code: `charts/kubelambda` installed by the real helm into the real
apiserver, with RBAC and Pod Security enforced.

The real controller-manager turns the operator's and the gateway's Deployments into ReplicaSets
and Pods, the real scheduler binds them, and the process kubelet runs them with their own
ServiceAccount tokens (TokenRequest API), so every call they make is authorized by the chart's
RBAC alone. The release and function namespaces enforce Pod Security `restricted`. Then a
Function with inline code is applied, becomes Active, and boto3, signing with the key the chart
generated, invokes it at the gateway pod's address. Any 403 in the operator's or the gateway's
log fails the test.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import kubernetes
import pytest
import yaml

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.controlplane import REPO
from tests.cluster.harness.waiting import wait_until

HELM = REPO / ".tools" / "helm"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
FORBIDDEN = re.compile(r"\b403\b|forbidden", re.IGNORECASE)
# Answers boto3's {"name": ...}; a batch from a poller has no name and gets "records".
HELLO = "def handler(event, context):\n    return {'hi': event.get('name', 'records')}\n"


def _rolled_out(deployment: Any) -> bool:
    """Every wanted replica is updated and available, and no old one is left."""
    status, wanted = deployment.status, deployment.spec.replicas
    return bool(
        (status.observed_generation or 0) >= deployment.metadata.generation
        and (status.updated_replicas or 0) == wanted
        and (status.available_replicas or 0) == wanted
        and (status.replicas or 0) == wanted
    )


class Release:
    def __init__(self, cluster: Cluster, system: str, functions: str) -> None:
        self.cluster = cluster
        self.system = system
        self.functions = functions
        assert cluster.client is not None
        self.core = kubernetes.client.CoreV1Api(cluster.client)
        self.apps = kubernetes.client.AppsV1Api(cluster.client)
        self.custom = kubernetes.client.CustomObjectsApi(cluster.client)

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        if not HELM.exists():
            pytest.fail(f"{HELM} is missing: run `make tools`")
        return subprocess.run(
            [str(HELM), "--kubeconfig", str(self.cluster.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=180,
        )

    def pods(self, component: str) -> list[Any]:
        selector = f"app.kubernetes.io/component={component}"
        return list(self.core.list_namespaced_pod(self.system, label_selector=selector).items)

    def log(self, component: str) -> str:
        assert self.cluster.kubelet is not None
        return "\n".join(
            self.cluster.kubelet.log(self.system, pod.metadata.name, component)
            for pod in self.pods(component)
        )

    def logs(self) -> str:
        components = ("operator", "gateway", "poller")
        return "\n".join(f"--- {c} ---\n{self.log(c)[-6000:]}" for c in components)


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> Iterator[Release]:
    system = cluster.new_namespace("kl-system", labels=RESTRICTED)
    functions = cluster.new_namespace("kl-functions", labels=RESTRICTED)
    installed = Release(cluster, system, functions)
    values = {
        "functionNamespaces": [functions],
        "runtimes": {"python3.12": {"image": "public.ecr.aws/lambda/python:3.12", "warmPool": 1}},
        "queue": {"sqlite": {"persistence": {"enabled": False}}},  # no volume provisioner here
    }
    result = installed.helm(
        "install",
        "kl",
        str(REPO / "charts" / "kubelambda"),
        "--namespace",
        system,
        "--set-json",
        f"functionNamespaces={json.dumps(values['functionNamespaces'])}",
        "--set-json",
        f"runtimes.python3\\.12={json.dumps(values['runtimes']['python3.12'])}",
        "--set",
        "queue.backend=sqlite",  # no NATS image runs on the process kubelet
        "--set",
        "gateway.replicas=1",  # sqlite: one gateway (test_gateway_replicas.py runs three)
        "--set",
        "queue.sqlite.persistence.enabled=false",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    try:
        yield installed
    finally:
        installed.helm("uninstall", "kl", "--namespace", system, "--wait", "--timeout", "60s")
        cluster.delete_namespace(functions)
        cluster.delete_namespace(system)


def test_the_chart_runs_the_operator_gateway_and_poller_as_real_deployments(
    release: Release,
) -> None:
    def available() -> list[Any]:
        deployments = release.apps.list_namespaced_deployment(release.system).items
        ready = [d for d in deployments if _rolled_out(d)]
        return ready if len(ready) == len(deployments) == 3 else []

    try:
        deployments = wait_until(available, timeout=90, interval=0.2, what="the Deployments")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{release.logs()}") from None
    assert {d.metadata.name for d in deployments} == {
        "kl-kubelambda-operator",
        "kl-kubelambda-gateway",
        "kl-kubelambda-poller",
    }
    assert len(release.pods("poller")) == 2  # the chart's default replicas
    for component in ("operator", "gateway"):
        (pod,) = release.pods(component)
        assert pod.metadata.owner_references[0].kind == "ReplicaSet"
        assert pod.spec.node_name == release.cluster.kubelet.node_name  # type: ignore[union-attr]
        assert pod.spec.service_account_name.endswith(component)
        tokens = [v for v in pod.spec.volumes if v.projected and v.name.startswith("kube-api")]
        assert tokens, "admission projected the ServiceAccount token"
        # The process reaches the apiserver with that token only (no client certificate).
        kubelet = release.cluster.kubelet
        assert kubelet is not None
        config = yaml.safe_load(
            kubelet.pods[(release.system, pod.metadata.name)].kubeconfig.read_text()
        )
        (user,) = config["users"]
        assert set(user["user"]) == {"tokenFile"}, user


def test_a_function_becomes_active_and_answers_boto3_at_the_gateway_pod(release: Release) -> None:
    test_the_chart_runs_the_operator_gateway_and_poller_as_real_deployments(release)
    code = {"app.py": HELLO}
    body = {
        "apiVersion": "kubelambda.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "hello"},
        "spec": {"runtime": "python3.12", "handler": "app.handler", "code": {"inline": code}},
    }
    release.custom.create_namespaced_custom_object(
        "kubelambda.dev", "v1alpha1", release.functions, "functions", body
    )

    def active() -> Any:
        fn = release.custom.get_namespaced_custom_object(
            "kubelambda.dev", "v1alpha1", release.functions, "functions", "hello"
        )
        return fn if (fn.get("status") or {}).get("state") == "Active" else None

    try:
        wait_until(active, timeout=60, interval=0.2, what="the Function to be Active")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{release.logs()}") from None
    (gateway,) = release.pods("gateway")
    # The chart turns SigV4 on by default with a generated key in a Secret: sign with that key.
    secrets = release.core.list_namespaced_secret(release.system).items
    (secret,) = [s for s in secrets if s.metadata.name.endswith("-sigv4")]
    (key,) = yaml.safe_load(base64.b64decode(secret.data["keys.yaml"]))["keys"]
    client = boto3.session.Session().client(
        "lambda",
        endpoint_url=f"http://{gateway.status.pod_ip}:9000",
        region_name="us-east-1",
        aws_access_key_id=key["accessKeyId"],
        aws_secret_access_key=key["secretAccessKey"],
        config=botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=60),
    )

    def served() -> bool:
        try:
            client.get_function_configuration(FunctionName=f"{release.functions}.hello")
        except client.exceptions.ResourceNotFoundException:
            return False
        return True

    wait_until(served, timeout=30, interval=0.2, what="the gateway to serve the Function")
    response = client.invoke(FunctionName=f"{release.functions}.hello", Payload=b'{"name": "kube"}')
    assert response["StatusCode"] == 200, release.logs()
    assert json.loads(response["Payload"].read()) == {"hi": "kube"}

    # The function's pod ran in the restricted namespace, admitted by Pod Security.
    # (The claim's labels are written once the first call is answered, so they follow it.)
    def labelled() -> bool:
        pods = release.core.list_namespaced_pod(release.functions).items
        return any(p.metadata.labels.get("kubelambda.dev/function") == "hello" for p in pods)

    wait_until(labelled, timeout=10, interval=0.1, what="the function's pod to be labelled")
    for component in ("operator", "gateway"):
        denied = [line for line in release.log(component).splitlines() if FORBIDDEN.search(line)]
        assert not denied, f"the {component} was refused by RBAC:\n" + "\n".join(denied[:20])


def test_pod_security_restricted_is_enforced_in_the_function_namespace(release: Release) -> None:
    privileged = {
        "metadata": {"name": "rogue"},
        "spec": {
            "containers": [
                {"name": "c", "image": "python:3.12", "securityContext": {"privileged": True}}
            ]
        },
    }
    with pytest.raises(kubernetes.client.ApiException) as refused:
        release.core.create_namespaced_pod(release.functions, privileged)
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message and "privileged" in message


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.component.sources.brokers import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def _poller_may(release: Release, verb: str, resource: str, namespace: str, **kw: str) -> bool:
    """What the chart's RBAC lets the poller's ServiceAccount do (a SubjectAccessReview)."""
    auth = kubernetes.client.AuthorizationV1Api(release.cluster.client)
    attributes = {"verb": verb, "resource": resource, "namespace": namespace, **kw}
    review = auth.create_subject_access_review(
        {
            "spec": {
                "user": f"system:serviceaccount:{release.system}:kl-kubelambda-poller",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{release.system}"],
                "resourceAttributes": attributes,
            }
        }
    )
    return bool(review.status.allowed)


def test_the_chart_poller_runs_a_mapping_through_the_gateway_pod(
    release: Release, redis: Any
) -> None:
    """The chart's poller Deployment, pointed at the gateway pod (Service DNS does not resolve
    under the process kubelet) through poller.gatewayURL: its replicas become Ready under the
    chart's RBAC, one of them takes a Redis mapping's Lease, invokes the function through the
    gateway pod, and writes the mapping's status."""
    fn = release.custom.list_namespaced_custom_object(
        "kubelambda.dev", "v1alpha1", release.functions, "functions"
    )
    if not fn["items"]:
        test_a_function_becomes_active_and_answers_boto3_at_the_gateway_pod(release)
    (gateway,) = release.pods("gateway")
    url = f"http://{gateway.status.pod_ip}:9000"
    result = release.helm(
        "upgrade",
        "kl",
        str(REPO / "charts" / "kubelambda"),
        "--namespace",
        release.system,
        "--reuse-values",
        "--set",
        f"poller.gatewayURL={url}",
    )
    assert result.returncode == 0, result.stderr + result.stdout

    def rolled_out() -> list[Any]:
        poller = release.apps.read_namespaced_deployment("kl-kubelambda-poller", release.system)
        pods = [p for p in release.pods("poller") if not p.metadata.deletion_timestamp]
        env = [
            {e.name: e.value for e in p.spec.containers[0].env}.get("KUBELAMBDA_GATEWAY_URL")
            for p in pods
        ]
        return pods if _rolled_out(poller) and env == [url] * 2 else []

    try:
        pods = wait_until(rolled_out, timeout=120, interval=0.2, what="the pollers' rollout")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{release.logs()}") from None
    for pod in pods:
        ready = {c.type: c.status for c in pod.status.conditions}
        assert ready.get("Ready") == "True", pod.status

    stream = "chart-flow"
    client = redis.client()
    for n in range(5):
        client.xadd(stream, {"data": json.dumps({"n": n})})
    client.close()
    mapping = {
        "apiVersion": "kubelambda.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "flow"},
        "spec": {
            "functionName": "hello",
            "source": {"redis": {"url": redis.url, "stream": stream}},
            "startingPosition": "TRIM_HORIZON",
        },
    }
    created = release.custom.create_namespaced_custom_object(
        "kubelambda.dev", "v1alpha1", release.functions, "eventsourcemappings", mapping
    )

    def processed() -> Any:
        obj = release.custom.get_namespaced_custom_object(
            "kubelambda.dev", "v1alpha1", release.functions, "eventsourcemappings", "flow"
        )
        status = obj.get("status") or {}
        done = status.get("state") == "Enabled" and status.get("lastProcessingResult") == "OK"
        return status if done else None

    try:
        status = wait_until(processed, timeout=90, interval=0.2, what="the mapping to run")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{release.logs()}") from None
    assert status["uuid"] == created["metadata"]["uid"]
    # Everything read from the stream is acknowledged: the invokes succeeded. (The status
    # says OK once the batch is answered; the acknowledgement follows it.)
    client = redis.client()

    def acknowledged() -> Any:
        (group,) = client.xinfo_groups(stream)
        return group if group["pending"] == 0 and group["entries-read"] == 5 else None

    try:
        wait_until(acknowledged, timeout=30, interval=0.1, what="the batch's acknowledgement")
    finally:
        client.close()
    # One replica holds the mapping's Lease, in the release's namespace.
    coord = kubernetes.client.CoordinationV1Api(release.cluster.client)
    lease = coord.read_namespaced_lease(
        f"kubelambda-esm-{created['metadata']['uid']}", release.system
    )
    assert lease.spec.holder_identity in {p.metadata.name for p in pods}

    # The chart's RBAC: what the poller needs, and nothing that would let it change the world.
    fns, system = release.functions, release.system
    for verb in ("get", "list", "watch"):
        assert _poller_may(release, verb, "eventsourcemappings", fns, group="kubelambda.dev")
    assert _poller_may(
        release, "patch", "eventsourcemappings", fns, group="kubelambda.dev", subresource="status"
    )
    for verb in ("get", "list", "create", "update", "patch"):
        assert _poller_may(release, verb, "leases", system, group="coordination.k8s.io")
    assert _poller_may(release, "get", "secrets", fns)  # a mapping's credentialsSecret
    refused = [
        ("update", "eventsourcemappings", fns, {"group": "kubelambda.dev"}),
        ("delete", "eventsourcemappings", fns, {"group": "kubelambda.dev"}),
        ("patch", "functions", fns, {"group": "kubelambda.dev"}),
        ("delete", "leases", system, {"group": "coordination.k8s.io"}),
        ("create", "leases", fns, {"group": "coordination.k8s.io"}),
        ("list", "secrets", fns, {}),
        ("get", "secrets", system, {}),
        ("create", "pods", fns, {}),
    ]
    for verb, resource, namespace, extra in refused:
        assert not _poller_may(release, verb, resource, namespace, **extra), (verb, resource)
    denied = [line for line in release.log("poller").splitlines() if FORBIDDEN.search(line)]
    assert not denied, "the poller was refused by RBAC:\n" + "\n".join(denied[:20])


def test_helm_uninstall_removes_the_generic_warm_pods(release: Release) -> None:
    """Runs last: generic pods are owned by the release's ClusterRole, so the real garbage
    collector removes them once `helm uninstall` deleted it (the teardown's uninstall is then
    a no-op)."""
    selector = "app.kubernetes.io/part-of=kubelambda,kubelambda.dev/pool=generic"

    def generic() -> list[Any]:
        return list(
            release.core.list_namespaced_pod(release.functions, label_selector=selector).items
        )

    pods = wait_until(generic, timeout=90, what="a generic warm pod")
    owners = [ref.kind for p in pods for ref in (p.metadata.owner_references or [])]
    assert "ClusterRole" in owners, owners
    result = release.helm("uninstall", "kl", "--namespace", release.system, "--wait")
    assert result.returncode == 0, result.stderr + result.stdout
    wait_until(
        lambda: not generic(), timeout=90, interval=0.5, what="the generic pods to be collected"
    )
