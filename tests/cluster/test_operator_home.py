"""The operator's own (release) namespace never serves functions, even when it serves every
namespace: a Function there fails with a status naming `metadata.namespace` and gets no pod (its
ServiceAccounts, the operator's own among them, could otherwise be a Function's role), while a
Function in any other namespace is served. The operator also refuses to start when told to
serve its own namespace.

The real operator (a subprocess, `--all-namespaces`) on the real control plane.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.controlplane import REPO, free_port
from tests.cluster.lambda_stack import AGENT_IMAGE, RUNTIME, LambdaStack, Role, handler_code


@pytest.fixture
def stack(cluster: Cluster, lambda_crds: list[Any], tmp_path: Path) -> Iterator[LambdaStack]:
    """`stack.ns` is the release namespace; `stack.extra[0]` an ordinary one."""
    stack = LambdaStack(tmp_path, cluster, warm=0)
    stack.ns = cluster.new_namespace("home")
    stack.extra = [cluster.new_namespace("team")]
    stack.client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    stack.core = kubernetes.client.CoreV1Api(stack.client)
    stack.custom = kubernetes.client.CustomObjectsApi(stack.client)
    try:
        yield stack
    finally:
        stack.stop()


GENERIC = "app.kubernetes.io/part-of=kubelambda,kubelambda.dev/pool=generic"


def operator_argv(stack: LambdaStack, *scope: str) -> list[str]:
    return [
        "operator",
        *scope,
        f"--release-namespace={stack.ns}",
        "--standalone",
        f"--agent-key-file={stack.agent_key_file}",
        f"--agent-image={AGENT_IMAGE}",
        f"--runtime-image={RUNTIME}={stack.runtime_image}",
        f"--warm-pool={RUNTIME}=1",  # per namespace with Functions; never the home one
        "--liveness-host=127.0.0.1",
        f"--liveness-port={free_port()}",
    ]


def test_the_release_namespace_never_serves_functions(stack: LambdaStack) -> None:
    told = subprocess.run(
        [sys.executable, "-m", "kubelambda.cli", *operator_argv(stack, f"--namespace={stack.ns}")],
        env=stack.env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert told.returncode == 2 and "never serves functions" in told.stderr, told

    argv = operator_argv(stack, "--all-namespaces")
    stack.operator = Role("operator", argv, stack.env(), stack.workdir / "operator.log")
    (team,) = stack.extra
    spec = {"runtime": RUNTIME, "handler": "app.handler", "code": {"inline": handler_code("1")}}
    for ns in (stack.ns, team):
        body = {
            "apiVersion": "kubelambda.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "hello"},
            "spec": spec,
        }
        stack.custom.create_namespaced_custom_object(
            "kubelambda.dev", "v1alpha1", ns, "functions", body
        )
    failed = stack.wait_state("functions", "hello", "Failed", timeout=60)["status"]
    assert failed["stateReason"].startswith(
        f"metadata.namespace: {stack.ns} is the operator's own namespace"
    ), failed
    ready = next(c for c in failed["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ReservedNamespace" and ready["status"] == "False"

    stack.ns, home = team, stack.ns  # the ordinary namespace: served, and its warm pool kept
    try:
        stack.wait_state("functions", "hello", "Active", timeout=60)
        stack.wait_pods(GENERIC, 1, timeout=60)
    finally:
        stack.ns = home
    assert not stack.pods("app.kubernetes.io/part-of=kubelambda"), "no pod in the home namespace"
