"""The process kubelet as a real Node: pods bound by the real scheduler run as processes on their
own loopback IPs, with real status, probes, restarts, env sources and volumes."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import kubernetes
import psutil
import pytest

from tests.cluster.harness.kubelet import Kubelet
from tests.cluster.harness.podspec import ImageSpec, plain_python_image
from tests.cluster.harness.waiting import wait_gone, wait_pod_phase, wait_pod_ready, wait_until


def pod(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": list(containers), **spec},
    }


def python(name: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "python:3.11-slim", "command": ["python", "-c", code], **extra}


WEB = {
    "name": "web",
    "image": "python:3.11-slim",
    "command": ["python", "-m", "http.server", "8080", "--bind", "$(POD_IP)"],
    "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
    "ports": [{"containerPort": 8080, "name": "http"}],
    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
}


def test_pods_get_their_own_ip_with_the_same_port(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, pod("one", WEB))
    core.create_namespaced_pod(namespace, pod("two", WEB))
    ips = {wait_pod_ready(core, namespace, name).status.pod_ip for name in ("one", "two")}
    assert len(ips) == 2 and all(ip.startswith("127.0.") and ip != "127.0.0.1" for ip in ips)
    for ip in ips:
        with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as response:
            assert response.status == 200
    ready = core.read_namespaced_pod("one", namespace)
    assert ready.status.phase == "Running" and ready.spec.node_name == kubelet.node_name
    status = ready.status.container_statuses[0]
    assert status.ready and status.state.running and status.restart_count == 0


def test_deletion_kills_the_process_group(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, pod("web", WEB))
    ready = wait_pod_ready(core, namespace, "web")
    pid = int(ready.status.container_statuses[0].container_id.removeprefix("process://"))
    assert psutil.pid_exists(pid)
    core.delete_namespaced_pod("web", namespace)
    wait_gone(lambda: core.read_namespaced_pod("web", namespace))
    wait_until(
        lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
        timeout=5,
    )


@pytest.mark.parametrize(
    ("policy", "code", "phase"),
    [("Never", 3, "Failed"), ("Never", 0, "Succeeded"), ("OnFailure", 0, "Succeeded")],
)
def test_restart_policy_terminal_phases(
    kubelet: Kubelet,
    core: kubernetes.client.CoreV1Api,
    namespace: str,
    policy: str,
    code: int,
    phase: str,
) -> None:
    core.create_namespaced_pod(
        namespace, pod("job", python("main", f"raise SystemExit({code})"), restartPolicy=policy)
    )
    done = wait_pod_phase(core, namespace, "job", phase)
    state = done.status.container_statuses[0].state.terminated
    assert state.exit_code == code and done.status.container_statuses[0].restart_count == 0


def test_restart_policy_always_restarts(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(
        namespace, pod("crash", python("main", "print('boom'); raise SystemExit(1)"))
    )

    def restarted() -> Any:
        p = core.read_namespaced_pod("crash", namespace)
        statuses = p.status.container_statuses or []
        return p if statuses and statuses[0].restart_count >= 2 else None

    crashed = wait_until(restarted, timeout=10, what="two restarts")
    assert crashed.status.phase == "Running"
    assert crashed.status.container_statuses[0].last_state.terminated.exit_code == 1
    assert kubelet.log(namespace, "crash", "main").count("boom") >= 2


def test_env_sources_and_shared_empty_dir(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "cfg"}, "data": {"greeting": "hi"}}
    )
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "sec"}, "stringData": {"token": "s3cr3t"}}
    )
    writer = python(
        "writer",
        "import json, os\n"
        "names = 'PLAIN NAME NS LABEL IP GREETING TOKEN EXPANDED MEM DIR'.split()\n"
        # written whole, then renamed: the reader must never see a half-written file
        "json.dump({k: os.environ.get(k) for k in names}, open('/shared/env.tmp', 'w'))\n"
        "os.rename('/shared/env.tmp', '/shared/env.json')",
        env=[
            {"name": "PLAIN", "value": "v"},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {
                "name": "GREETING",
                "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}},
            },
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
            {"name": "EXPANDED", "value": "$(PLAIN)-$(NAME)"},
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "DIR", "value": "/shared"},
        ],
        volumeMounts=[{"name": "scratch", "mountPath": "/shared"}],
        resources={"limits": {"memory": "64Mi"}},
    )
    reader = python(
        "reader",
        "import os, time\n"
        "while not os.path.exists('/shared/env.json'): time.sleep(0.05)\n"
        "print(open('/shared/env.json').read(), flush=True)",
        volumeMounts=[{"name": "scratch", "mountPath": "/shared"}],
    )
    spec = pod(
        "envs", writer, reader, restartPolicy="Never", volumes=[{"name": "scratch", "emptyDir": {}}]
    )
    core.create_namespaced_pod(namespace, spec)
    done = wait_pod_phase(core, namespace, "envs", "Succeeded")
    env = json.loads(kubelet.log(namespace, "envs", "reader"))
    assert env["DIR"] != "/shared" and env["DIR"].endswith("/volumes/scratch")
    del env["DIR"]
    assert env == {
        "PLAIN": "v", "NAME": "envs", "NS": namespace, "LABEL": "envs", "IP": done.status.pod_ip,
        "GREETING": "hi", "TOKEN": "s3cr3t", "EXPANDED": "v-envs", "MEM": "64",
    }  # fmt: skip


def test_exec_readiness_probe_and_init_container(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    init = python(
        "init",
        "open('/work/ready', 'w').write('x')",
        volumeMounts=[{"name": "w", "mountPath": "/work"}],
    )
    main = python(
        "main",
        "import time; time.sleep(60)",
        volumeMounts=[{"name": "w", "mountPath": "/work"}],
        readinessProbe={
            "exec": {"command": ["python", "-c", "import os; assert os.path.exists('/work/ready')"]}
        },
    )
    core.create_namespaced_pod(
        namespace,
        pod("probed", main, initContainers=[init], volumes=[{"name": "w", "emptyDir": {}}]),
    )
    ready = wait_pod_ready(core, namespace, "probed")
    assert ready.status.init_container_statuses[0].state.terminated.exit_code == 0


def test_unknown_image_is_a_config_error(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(
        namespace, pod("nope", {"name": "c", "image": "registry.example/unknown:1"})
    )

    def waiting() -> Any:
        statuses = core.read_namespaced_pod("nope", namespace).status.container_statuses or []
        w = statuses[0].state.waiting if statuses else None
        return w if w and w.reason == "CreateContainerConfigError" else None

    assert "image table" in wait_until(waiting, what="a CreateContainerConfigError").message


def test_image_table_is_extensible(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    base = plain_python_image()
    kubelet.images.add(
        "example.org/greeter:*",
        ImageSpec(
            entrypoint=("python3", "-c"),
            cmd=("print('hello from the table')",),
            executables=base.executables,
        ),
    )
    core.create_namespaced_pod(
        namespace,
        pod("greeter", {"name": "g", "image": "example.org/greeter:1"}, restartPolicy="Never"),
    )
    wait_pod_phase(core, namespace, "greeter", "Succeeded")
    assert kubelet.log(namespace, "greeter", "g").strip() == "hello from the table"


def test_the_node_is_ready_renews_its_lease_and_the_scheduler_binds_to_it(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    node = core.read_node(kubelet.node_name)
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("True", "KubeletReady")
    assert node.status.node_info.kubelet_version == "v1.35.4"
    assert not node.spec.taints, "the node lifecycle controller sees a healthy node"
    leases = kubernetes.client.CoordinationV1Api(core.api_client)
    lease = leases.read_namespaced_lease(kubelet.node_name, "kube-node-lease")
    assert lease.spec.holder_identity == kubelet.node_name
    assert lease.metadata.owner_references[0].uid == node.metadata.uid
    first = lease.spec.renew_time
    wait_until(
        lambda: (
            leases.read_namespaced_lease(kubelet.node_name, "kube-node-lease").spec.renew_time
            > first
        ),
        timeout=15,
        what="the kubelet to renew its Lease",
    )
    core.create_namespaced_pod(
        namespace, pod("bound", python("main", "pass"), restartPolicy="Never")
    )
    done = wait_pod_phase(core, namespace, "bound", "Succeeded")
    assert done.spec.node_name == kubelet.node_name

    def scheduled() -> Any:
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=bound")
        return [e for e in events.items if e.reason == "Scheduled"]

    (event,) = wait_until(scheduled, what="the scheduler's Scheduled event")
    assert event.reporting_component == "default-scheduler" or event.source.component == (
        "default-scheduler"
    )


TRAP = """
import signal, sys, time
def term(*_):
    print("got SIGTERM", flush=True)
    time.sleep(0.5)
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
print("up", flush=True)
while True:
    time.sleep(0.1)
"""
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, lambda *_: print("ignoring SIGTERM", flush=True))
print("up", flush=True)
while True:
    time.sleep(0.1)
"""


def test_graceful_deletion_waits_for_the_kubelet_and_honours_the_grace_period(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(
        namespace, pod("polite", python("main", TRAP), terminationGracePeriodSeconds=5)
    )
    core.create_namespaced_pod(
        namespace, pod("stubborn", python("main", STUBBORN), terminationGracePeriodSeconds=2)
    )
    for name in ("polite", "stubborn"):
        wait_until(lambda name=name: "up" in kubelet.log(namespace, name, "main"), what="start")
    started = time.monotonic()
    core.delete_namespaced_pod("stubborn", namespace)
    core.delete_namespaced_pod("polite", namespace)
    held = core.read_namespaced_pod("stubborn", namespace)  # the apiserver waits for the kubelet
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.deletion_grace_period_seconds == 2
    wait_gone(lambda: core.read_namespaced_pod("polite", namespace), timeout=10)
    assert "got SIGTERM" in kubelet.log(namespace, "polite", "main")
    wait_gone(lambda: core.read_namespaced_pod("stubborn", namespace), timeout=10)
    assert time.monotonic() - started >= 2, "SIGKILL came only after the grace period"
    assert "ignoring SIGTERM" in kubelet.log(namespace, "stubborn", "main")


IN_POD_CLIENT = """
import base64, json, kubernetes
kubernetes.config.load_kube_config()
api = kubernetes.client.ApiClient()
core = kubernetes.client.CoreV1Api(api)
review = kubernetes.client.AuthenticationV1Api(api).create_self_subject_review({})
out = {"user": review.status.user_info.username}
out["configmap"] = core.read_namespaced_config_map("cfg", "NS").data["greeting"]
try:
    core.list_namespaced_secret("NS")
    out["secrets"] = "allowed"
except kubernetes.client.ApiException as exc:
    out["secrets"] = exc.status
token = open("/var/run/secrets/kubernetes.io/serviceaccount/token").read()
claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
out["bound_pod"] = claims["kubernetes.io"]["pod"]["name"]
out["namespace"] = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
out["extra"] = open("/etc/extra/greeting").read() + open("/etc/extra/password").read()
print(json.dumps(out), flush=True)
"""


def test_a_pod_authenticates_as_its_service_account_and_rbac_is_enforced(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    rbac = kubernetes.client.RbacAuthorizationV1Api(core.api_client)
    rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "reader"}, "rules": [rule]})
    binding = {
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
    }
    rbac.create_namespaced_role_binding(namespace, binding)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "cfg"}, "data": {"greeting": "hi"}}
    )
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "pw"}, "stringData": {"password": "!"}}
    )
    extra = {
        "name": "extra",
        "projected": {
            "sources": [
                {"configMap": {"name": "cfg"}},
                {"secret": {"name": "pw"}},
            ]
        },
    }
    client = python(
        "main",
        IN_POD_CLIENT.replace("NS", namespace),
        volumeMounts=[{"name": "extra", "mountPath": "/etc/extra"}],
    )
    spec = pod(
        "client", client, serviceAccountName="reader", restartPolicy="Never", volumes=[extra]
    )
    core.create_namespaced_pod(namespace, spec)
    done = wait_pod_phase(core, namespace, "client", "Succeeded", timeout=30)
    mounted = {m.mount_path for m in done.spec.containers[0].volume_mounts}
    assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounted, "admission added the token"
    out = json.loads(kubelet.log(namespace, "client", "main").strip().splitlines()[-1])
    assert out == {
        "user": f"system:serviceaccount:{namespace}:reader",
        "configmap": "hi",
        "secrets": 403,
        "bound_pod": "client",
        "namespace": namespace,
        "extra": "hi!",
    }


def test_an_empty_dir_over_its_size_limit_evicts_the_pod(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    writer = python(
        "main",
        "import time\nopen('/scratch/blob', 'wb').write(b'x' * 2**21)\ntime.sleep(60)",
        volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}],
    )
    volume = {"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}
    core.create_namespaced_pod(namespace, pod("hog", writer, volumes=[volume]))
    evicted = wait_pod_phase(core, namespace, "hog", "Failed", timeout=20)
    assert evicted.status.reason == "Evicted"
    assert 'EmptyDir volume "scratch" exceeds the limit' in evicted.status.message


def test_a_simulated_image_pull_delays_only_the_first_pod_of_an_image(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    image = f"example.org/cold-{namespace}:1"
    kubelet.images.add(image, plain_python_image())
    kubelet.images.delay_pulls(image, 1.5)
    for name in ("first", "second"):
        container = {**python("main", "print('ran')"), "image": image}
        core.create_namespaced_pod(namespace, pod(name, container, restartPolicy="Never"))
        wait_pod_phase(core, namespace, name, "Succeeded", timeout=20)

    def reasons(name: str) -> list[str]:
        events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        return sorted(e.reason for e in events.items if e.reason in ("Pulling", "Pulled"))

    assert wait_until(lambda: reasons("first") == ["Pulled", "Pulling"], what="pull events")
    assert reasons("second") == [], "the image was already on the node"


def test_a_deployment_becomes_replica_set_pods_run_by_the_kubelet(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    apps = kubernetes.client.AppsV1Api(core.api_client)
    deployment = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [WEB]}},
        },
    }
    apps.create_namespaced_deployment(namespace, deployment)

    def available() -> Any:
        current = apps.read_namespaced_deployment("web", namespace)
        return current if current.status.available_replicas == 2 else None

    wait_until(available, timeout=30, what="two available replicas")
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    assert {p.metadata.owner_references[0].kind for p in pods} == {"ReplicaSet"}
    apps.delete_namespaced_deployment("web", namespace)
    wait_until(
        lambda: not core.list_namespaced_pod(namespace, label_selector="app=web").items,
        timeout=30,
        what="the garbage collector to remove the Deployment's pods",
    )


SLOW_START = """
import http.server, os, time
time.sleep(1.5)  # a slow start: liveness must not run before the startup probe passes
server = http.server.HTTPServer((os.environ["POD_IP"], 8080), http.server.SimpleHTTPRequestHandler)
server.serve_forever()
"""


def test_liveness_waits_for_the_startup_probe(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    probe = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1, "failureThreshold": 1}
    container = python(
        "main",
        SLOW_START,
        env=[{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        startupProbe={**probe, "failureThreshold": 10},
        livenessProbe=probe,
    )
    core.create_namespaced_pod(namespace, pod("slow", container))
    ready = wait_pod_ready(core, namespace, "slow", timeout=20)
    status = ready.status.container_statuses[0]
    assert status.started and status.restart_count == 0, "not killed while starting"
