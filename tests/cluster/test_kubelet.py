"""Tests of the test kubelet: pods run as processes on their own loopback IPs."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import kubernetes
import psutil
import pytest

from tests.cluster.kubelet import Kubelet
from tests.cluster.podspec import ImageSpec, ImageTable, plain_python_image
from tests.cluster.waiting import wait_gone, wait_pod_phase, wait_pod_ready, wait_until


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
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_pod("default", pod("one", WEB))
    core.create_namespaced_pod("default", pod("two", WEB))
    ips = {wait_pod_ready(core, "default", name).status.pod_ip for name in ("one", "two")}
    assert len(ips) == 2 and all(ip.startswith("127.0.") and ip != "127.0.0.1" for ip in ips)
    for ip in ips:
        with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as response:
            assert response.status == 200
    ready = core.read_namespaced_pod("one", "default")
    assert ready.status.phase == "Running" and ready.spec.node_name == kubelet.node_name
    status = ready.status.container_statuses[0]
    assert status.ready and status.state.running and status.restart_count == 0


def test_deletion_kills_the_process_group(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_pod("default", pod("web", WEB))
    ready = wait_pod_ready(core, "default", "web")
    pid = int(ready.status.container_statuses[0].container_id.removeprefix("process://"))
    assert psutil.pid_exists(pid)
    core.delete_namespaced_pod("web", "default")
    wait_gone(lambda: core.read_namespaced_pod("web", "default"))
    wait_until(
        lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
        timeout=5,
    )


@pytest.mark.parametrize(
    ("policy", "code", "phase"),
    [("Never", 3, "Failed"), ("Never", 0, "Succeeded"), ("OnFailure", 0, "Succeeded")],
)
def test_restart_policy_terminal_phases(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api, policy: str, code: int, phase: str
) -> None:
    core.create_namespaced_pod(
        "default", pod("job", python("main", f"raise SystemExit({code})"), restartPolicy=policy)
    )
    done = wait_pod_phase(core, "default", "job", phase)
    state = done.status.container_statuses[0].state.terminated
    assert state.exit_code == code and done.status.container_statuses[0].restart_count == 0


def test_restart_policy_always_restarts(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_pod(
        "default", pod("crash", python("main", "print('boom'); raise SystemExit(1)"))
    )

    def restarted() -> Any:
        p = core.read_namespaced_pod("crash", "default")
        statuses = p.status.container_statuses or []
        return p if statuses and statuses[0].restart_count >= 2 else None

    crashed = wait_until(restarted, timeout=10, what="two restarts")
    assert crashed.status.phase == "Running"
    assert crashed.status.container_statuses[0].last_state.terminated.exit_code == 1
    assert kubelet.log("default", "crash", "main").count("boom") >= 2


def test_env_sources_and_shared_empty_dir(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cfg"}, "data": {"greeting": "hi"}}
    )
    core.create_namespaced_secret(
        "default", {"metadata": {"name": "sec"}, "stringData": {"token": "s3cr3t"}}
    )
    writer = python(
        "writer",
        "import json, os\n"
        "names = 'PLAIN NAME NS LABEL IP GREETING TOKEN EXPANDED DIR'.split()\n"
        "json.dump({k: os.environ.get(k) for k in names}, open('/shared/env.json', 'w'))",
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
            {"name": "DIR", "value": "/shared"},
        ],
        volumeMounts=[{"name": "scratch", "mountPath": "/shared"}],
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
    core.create_namespaced_pod("default", spec)
    done = wait_pod_phase(core, "default", "envs", "Succeeded")
    env = json.loads(kubelet.log("default", "envs", "reader"))
    assert env["DIR"] != "/shared" and env["DIR"].endswith("/volumes/scratch")
    del env["DIR"]
    assert env == {
        "PLAIN": "v", "NAME": "envs", "NS": "default", "LABEL": "envs", "IP": done.status.pod_ip,
        "GREETING": "hi", "TOKEN": "s3cr3t", "EXPANDED": "v-envs",
    }  # fmt: skip


def test_exec_readiness_probe_and_init_container(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api
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
        "default",
        pod("probed", main, initContainers=[init], volumes=[{"name": "w", "emptyDir": {}}]),
    )
    ready = wait_pod_ready(core, "default", "probed")
    assert ready.status.init_container_statuses[0].state.terminated.exit_code == 0


def test_unknown_image_is_a_config_error(
    kubelet: Kubelet, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_pod(
        "default", pod("nope", {"name": "c", "image": "registry.example/unknown:1"})
    )

    def waiting() -> Any:
        statuses = core.read_namespaced_pod("nope", "default").status.container_statuses or []
        w = statuses[0].state.waiting if statuses else None
        return w if w and w.reason == "CreateContainerConfigError" else None

    assert "image table" in wait_until(waiting, what="a CreateContainerConfigError").message


@pytest.fixture
def image_table() -> ImageTable:
    table = ImageTable.default()
    base = plain_python_image()
    table.add(
        "example.org/greeter:*",
        ImageSpec(
            entrypoint=("python3", "-c"),
            cmd=("print('hello from the table')",),
            executables=base.executables,
        ),
    )
    return table


def test_image_table_is_extensible(kubelet: Kubelet, core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_pod(
        "default",
        pod("greeter", {"name": "g", "image": "example.org/greeter:1"}, restartPolicy="Never"),
    )
    wait_pod_phase(core, "default", "greeter", "Succeeded")
    assert kubelet.log("default", "greeter", "g").strip() == "hello from the table"
