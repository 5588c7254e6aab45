"""The whole cluster path on the real control plane: `kubelambda operator` and `kubelambda gateway
--cluster` as real subprocesses (admin credentials), function pods scheduled by the real
scheduler and run by the process kubelet, boto3 as the client.

`LambdaStack` serves one namespace of the session's `Cluster` (a fresh one per test module),
starts the roles on loopback with free ports and stops them in reverse order, ending only the
processes it started, by PID. Helpers wait for conditions with a bounded deadline
(`waiting.wait_until`), never for a fixed time. The chart's own Deployments, with their
ServiceAccounts and RBAC, are exercised by test_helm_install.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import kubernetes

from kubelambda.kube.client import KubeApi
from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.controlplane import REPO, free_port
from tests.cluster.harness.kubelet import Kubelet
from tests.cluster.harness.waiting import wait_gone, wait_until

GROUP, VERSION = "kubelambda.dev", "v1alpha1"
AGENT_IMAGE = "kubelambda/kubelambda:0.1.0"
RUNTIME = "python3.12"
NS = "default"  # where the kind e2e stack runs; the harness's stacks get their own namespace


def admin_api(cluster: Cluster) -> KubeApi:
    """Our own apiserver client with the cluster's admin credentials."""
    assert cluster.control.pki is not None
    return KubeApi(cluster.url, ssl_context=cluster.control.ssl_context(cluster.control.pki.admin))


def handler_code(body: str) -> dict[str, str]:
    """Inline code: app.handler returns `body` (a Python expression over event/context)."""
    return {"app.py": f"import os\n\ndef handler(event, context):\n    return {body}\n"}


class Role:
    """A kubelambda role as a subprocess, its output in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log_path = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubelambda.cli", *argv],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, grace: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()
        return self.proc.returncode


class LambdaStack:
    def __init__(
        self,
        workdir: Path,
        cluster: Cluster | None = None,
        *,
        warm: int = 2,
        lease: float = 60.0,
        gateway_flags: tuple[str, ...] = (),
        operator_flags: tuple[str, ...] = (),
        gateway_env: dict[str, str] | None = None,
        runtime_image: str = "public.ecr.aws/lambda/python:3.12",
        extra_namespaces: int = 0,
        ledger: bool = False,
    ) -> None:
        self.runtime_image = runtime_image
        self.workdir = workdir
        self.cluster = cluster
        self.warm = warm
        self.lease = lease
        self.gateway_flags = gateway_flags  # e.g. the code store's --code-store-* flags
        self.operator_flags = operator_flags  # e.g. --assumable-role (the chart's functionRoles)
        self.gateway_env = gateway_env or {}  # e.g. the code store's AWS_* keys
        self.extra_count = extra_namespaces
        self.extra: list[str] = []  # more served namespaces (the operator's and gateways')
        self.ledger = ledger  # the gateways share one concurrency ledger (Leases in self.ns)
        self.ns = NS
        self._clients: dict[str, Any] = {}  # gateway URL -> its boto3 Lambda client
        self.kubelet: Kubelet | None = cluster.kubelet if cluster else None
        self.operator: Role | None = None
        self.replicas: dict[str, Role] = {}
        self.gateways: dict[str, tuple[Role, str]] = {}
        self.client: kubernetes.client.ApiClient | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        assert self.cluster is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ns = self.cluster.new_namespace("stack")
        self.extra = [self.cluster.new_namespace("more") for _ in range(self.extra_count)]
        self.client = kubernetes.config.new_client_from_config(str(self.cluster.kubeconfig))
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.custom = kubernetes.client.CustomObjectsApi(self.client)
        self.start_operator()
        self.start_gateway("gw-a")

    def env(self) -> dict[str, str]:
        assert self.cluster is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env["KUBECONFIG"] = str(self.cluster.kubeconfig)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    @property
    def agent_key_file(self) -> Path:
        """The key the agents' tokens derive from, shared by the operator and the gateways, as
        the chart's agentKey Secret is (so every scenario drives authenticated agents)."""
        path = self.workdir / "agent-key"
        if not path.exists():
            path.write_text(secrets.token_hex(24))
        return path

    def start_operator(self, name: str = "operator", *, election: str | None = None) -> Role:
        """The operator (`name` "operator"), or another replica (kept in `replicas`); with
        `election`, it stands by until it holds that Lease in the stack's namespace."""
        mode = (
            [f"--leader-election={election}", f"--leader-election-namespace={self.ns}"]
            if election
            else ["--standalone"]
        )
        argv = [
            "operator",
            f"--agent-key-file={self.agent_key_file}",
            f"--namespace={self.ns}",
            *(f"--namespace={ns}" for ns in self.extra),
            *mode,
            f"--agent-image={AGENT_IMAGE}",
            f"--runtime-image={RUNTIME}={self.runtime_image}",
            f"--warm-pool={RUNTIME}={self.warm}",
            "--idle-keepalive=300",
            "--max-age=7200",
            f"--claim-lease={self.lease:g}",
            "--liveness-host=127.0.0.1",
            f"--liveness-port={free_port()}",
            "--start-timeout=60",
            *self.operator_flags,
        ]
        env = {**self.env(), "POD_NAME": name}  # the replica's name leads its Lease identity
        role = Role(name, argv, env, self.workdir / f"{name}.log")
        if name == "operator":
            self.operator = role
        else:
            self.replicas[name] = role
        return role

    def start_gateway(self, identity: str) -> str:
        port = free_port()
        argv = [
            "gateway",
            "--cluster",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--default-namespace={self.ns}",
            f"--namespace={self.ns}",
            *(f"--namespace={ns}" for ns in self.extra),
            "--concurrency-limit=50",
            "--unreserved-floor=10",
            "--idle-keepalive=300",
            "--auth=none",
            f"--agent-key-file={self.agent_key_file}",
            f"--identity={identity}",
            f"--claim-lease={self.lease:g}",
            "--claim-timeout=60",  # refills take longer on a loaded machine; 429s are not the test
            f"--queue=sqlite:///{self.workdir / identity}-events.sqlite3",
            *self.gateway_flags,
        ]
        if self.ledger:
            argv.append(f"--ledger-namespace={self.ns}")
        env = {**self.env(), **self.gateway_env}
        role = Role(identity, argv, env, self.workdir / f"{identity}.log")
        url = f"http://127.0.0.1:{port}"
        self.gateways[identity] = (role, url)

        def ready() -> bool:
            if role.proc.poll() is not None:
                raise AssertionError(f"gateway {identity} exited:\n{role.log()}")
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        # A generous bound: on a loaded 2-core machine the import and first lists take a while.
        try:
            wait_until(ready, timeout=90, interval=0.1, what=f"gateway {identity} to be ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{role.log()[-4000:]}") from None
        return url

    def stop(self) -> None:
        for role, _ in self.gateways.values():
            role.stop()
        if self.operator is not None:
            self.operator.stop()
        for replica in self.replicas.values():
            replica.stop()
        if self.client is not None:
            self.client.close()
        if self.cluster is not None and self.ns != NS:
            self.cluster.delete_namespace(self.ns)
            for ns in self.extra:
                self.cluster.delete_namespace(ns)

    def logs(self) -> str:
        parts = [f"--- {r.name} ---\n{r.log()[-6000:]}" for r, _ in self.gateways.values()]
        if self.operator is not None:
            parts.append(f"--- operator ---\n{self.operator.log()[-8000:]}")
        parts += [f"--- {n} ---\n{r.log()[-8000:]}" for n, r in self.replicas.items()]
        return "\n".join(parts)

    # --- resources ----------------------------------------------------------------------------

    def apply(self, plural: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        kind = {"functions": "Function", "versions": "Version", "aliases": "Alias"}[plural]
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name, "namespace": self.ns},
            "spec": spec,
        }
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, plural, body
        )
        return result

    def get(self, plural: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.ns, plural, name
        )
        return result

    def patch_spec(self, plural: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.ns, plural, name, {"spec": spec}
        )

    def delete(self, plural: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name)

    def function(self, name: str, code: dict[str, str], **spec: Any) -> dict[str, Any]:
        full = {"runtime": RUNTIME, "handler": "app.handler", "code": {"inline": code}, **spec}
        return self.apply("functions", name, full)

    def wait_state(
        self, plural: str, name: str, state: str, *, timeout: float = 30, **fields: Any
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any]:
            obj = self.get(plural, name)
            status = obj.get("status") or {}
            if status.get("state") == state and all(status.get(k) == v for k, v in fields.items()):
                return obj
            return {}

        try:
            return wait_until(
                reached, timeout=timeout, interval=0.1, what=f"{plural}/{name} to be {state}"
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def pods(self, selector: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(self.ns, label_selector=selector).items)

    def live_pods(self, selector: str) -> list[Any]:
        return [p for p in self.pods(selector) if not p.metadata.deletion_timestamp]

    def claimed_pods(self, selector: str, count: int = 1) -> list[Any]:
        """The `count` live pods of `selector` a gateway claimed. A gateway writes the claim's
        labels once the first call is answered, so they may follow that answer by a moment."""
        return self.wait_pods(f"{selector},kubelambda.dev/state=claimed", count, timeout=10)

    def wait_pods(
        self, selector: str, count: int, *, ready: bool = True, timeout: float = 45
    ) -> list[Any]:
        def enough() -> list[Any]:
            pods = [p for p in self.live_pods(selector) if not ready or _ready(p)]
            return pods if len(pods) == count else []

        try:
            return wait_until(
                enough, timeout=timeout, interval=0.1, what=f"{count} pods matching {selector}"
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def wait_no_pods(self, selector: str, *, timeout: float = 30) -> None:
        wait_until(
            lambda: not self.pods(selector), timeout=timeout, what=f"no pods matching {selector}"
        )

    def wait_pod_gone(self, name: str, *, timeout: float = 30) -> None:
        wait_gone(lambda: self.core.read_namespaced_pod(name, self.ns), timeout=timeout)

    def kill_pod(self, name: str) -> None:
        """SIGKILL every process of the pod (its container's process group), as an OOM kill."""
        assert self.kubelet is not None
        run = self.kubelet.pods[(self.ns, name)]
        for container in run.mains:
            if container.proc is not None and container.proc.returncode is None:
                os.killpg(container.proc.pid, signal.SIGKILL)

    def agent_state(self, name: str) -> dict[str, Any]:
        """The agent's state document, read from its control API on the pod IP with the token a
        gateway derives for that pod (without it the agent answers 401)."""
        from kubelambda.kube.agentauth import NONCE, agent_token

        pod = self.core.read_namespaced_pod(name, self.ns)
        key = self.agent_key_file.read_bytes().strip()
        token = agent_token(key, pod.metadata.annotations[NONCE])
        request = urllib.request.Request(
            f"http://{pod.status.pod_ip}:8080/kubelambda/v1/state",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            result: dict[str, Any] = json.load(r)
        return result

    # --- invoking -----------------------------------------------------------------------------

    def lambda_client(self, gateway: str = "gw-a") -> Any:
        config = botocore.config.Config(
            retries={"total_max_attempts": 1, "mode": "standard"},  # no retries: see every answer
            read_timeout=60,
            connect_timeout=5,
        )
        # A session per client: boto3's default session is not safe across threads.
        return boto3.session.Session().client(
            "lambda",
            endpoint_url=self.gateways[gateway][1],
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=config,
        )

    def invoke(
        self,
        name: str,
        payload: Any = None,
        *,
        gateway: str = "gw-a",
        client: Any = None,
        **kw: Any,
    ) -> dict[str, Any]:
        if client is None:
            # One client per gateway address: building one loads botocore's model (~0.3 s).
            key = self.gateways[gateway][1]
            if key not in self._clients:
                self._clients[key] = self.lambda_client(gateway)
            client = self._clients[key]
        response: dict[str, Any] = client.invoke(
            FunctionName=name, Payload=json.dumps(payload or {}).encode(), **kw
        )
        response["body"] = json.loads(response["Payload"].read() or b"null")
        return response

    def metric(self, name: str, gateway: str = "gw-a", **labels: str) -> float:
        """The sum of a gateway's Prometheus samples `name` whose labels include `labels`."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{self.gateways[gateway][1]}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def wait_servable(
        self, name: str, qualifier: str | None = None, *, timeout: float = 20
    ) -> None:
        """Until the gateway's catalog knows NAME[:QUALIFIER] (it learns from its watch)."""
        client = self.lambda_client()

        def known() -> bool:
            # The control API answers Active only once this gateway's catalog serves it.
            kw = {"Qualifier": qualifier} if qualifier else {}
            try:
                config = client.get_function_configuration(FunctionName=name, **kw)
            except client.exceptions.ResourceNotFoundException:
                return False
            return bool(config["State"] == "Active")

        wait_until(known, timeout=timeout, interval=0.1, what=f"the gateway to serve {name}")


def _ready(pod: Any) -> bool:
    conditions = (pod.status and pod.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


@contextlib.contextmanager
def running_stack(cluster: Cluster, workdir: Path, **kw: Any) -> Iterator[LambdaStack]:
    """A stack in a fresh namespace of `cluster`, stopped (namespace deleted) afterwards."""
    stack = LambdaStack(workdir, cluster, **kw)
    before = len(cluster.kubelet.errors) if cluster.kubelet else 0
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        errors = cluster.kubelet.errors[before:] if cluster.kubelet else []
        assert not errors, f"the process kubelet failed: {errors!r}"


def elapsed(start: float) -> float:
    return time.monotonic() - start
