"""The function pod on a real cluster (issue 16): big ConfigMap code on provisioned pods, a 20 MB
zip from a URL within the agent's memory limit, cold nodes whose runtime image takes 40 s to
pull, probes that never kill a pod still warming up.

The real control plane, the real `kubelambda operator` and `kubelambda gateway --cluster`, the
process kubelet as the node (its simulated image pull is the cold node), boto3 as the client.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import io
import os
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.utils import parse_quantity

from kubelambda.kube import contract as c
from kubelambda.runtime.spec import EnvironmentSpec
from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.waiting import wait_until
from tests.cluster.lambda_stack import RUNTIME, LambdaStack, handler_code, running_stack
from tests.component.runtime.helpers import BIG_ZIP_MB, big_zip, reset_peak, status_kb

ANNOTATION_CAP = 256 * 1024  # the apiserver's limit on a pod's annotations, together
PULL_SECONDS = 40  # a cold node's image pull, as the issue measured
WARM = f"kubelambda.dev/pool=generic,kubelambda.dev/runtime={RUNTIME},kubelambda.dev/state=warm"


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, lambda_crds: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaStack]:
    with running_stack(cluster, tmp_path_factory.mktemp("anatomy"), warm=1) as running:
        yield running


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_900_kib_configmap_function_gets_provisioned_pods_that_serve_it(
    stack: LambdaStack,
) -> None:
    blob = os.urandom(900 * 1024)  # incompressible: the zip is as big as its content
    handler = (
        "import hashlib, pathlib\n\n"
        "def handler(event, context):\n"
        "    data = (pathlib.Path(__file__).parent / 'blob.bin').read_bytes()\n"
        "    return {'size': len(data), 'sha': hashlib.sha256(data).hexdigest()}\n"
    )
    archive = _zip({"app.py": handler.encode(), "blob.bin": blob})
    assert len(archive) > 900 * 1024
    configmap = {
        "metadata": {"name": "big-code"},
        "binaryData": {"code.zip": base64.b64encode(archive).decode()},
    }
    stack.core.create_namespaced_config_map(stack.ns, configmap)
    spec = {
        "runtime": RUNTIME,
        "handler": "app.handler",
        "code": {"configMap": {"name": "big-code", "key": "code.zip"}},
    }
    stack.apply("functions", "big", spec)
    status = stack.wait_state("functions", "big", "Active")["status"]
    assert status["codeSha256"] == hashlib.sha256(archive).hexdigest()
    stack.apply("versions", "big-v1", {"functionName": "big"})
    stack.wait_state("versions", "big-v1", "Active")
    alias = {"functionName": "big", "name": "live", "functionVersion": "1"}
    stack.apply("aliases", "big-live", {**alias, "provisionedConcurrency": 1})
    stack.wait_state("aliases", "big-live", "Active", timeout=90, provisionedConcurrencyReady=1)
    (pod,) = stack.live_pods("kubelambda.dev/pool=provisioned,kubelambda.dev/function=big")
    annotations = pod.metadata.annotations
    assert sum(len(k) + len(v) for k, v in annotations.items()) < ANNOTATION_CAP // 16
    carried = EnvironmentSpec.model_validate_json(annotations[c.SPEC]).code
    assert carried.zip_base64 is None and carried.path == "code/0/code.zip"
    volume = next(v for v in pod.spec.volumes if v.name == "spec")
    assert [s.config_map.name for s in volume.projected.sources if s.config_map] == ["big-code"]
    stack.wait_servable("big", "live")
    response = stack.invoke("big", Qualifier="live")
    assert response["body"] == {"size": len(blob), "sha": hashlib.sha256(blob).hexdigest()}
    assert len(stack.live_pods("kubelambda.dev/function=big")) == 1, "the provisioned pod served"


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # no request lines in the test's output


@contextlib.contextmanager
def _served(path: Path) -> Iterator[str]:
    """`path` over HTTP on loopback (a code URL, as S3 or an artifact store would serve it)."""
    handler = functools.partial(_QuietFiles, directory=str(path.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_20_mb_zip_from_a_url_stays_within_the_agents_memory_limit(
    stack: LambdaStack, tmp_path: Path
) -> None:
    """Issue 16, point 2: the agent sidecar has the operator's default limit (128 MiB; the
    chart's values size it), and a warm pod specialized with a 20 MB zip from a URL serves it
    with the agent's peak RSS (VmHWM of its process, reset before the call) far below that
    limit and growing by much less than the zip: the download is streamed to disk."""
    assert stack.cluster.kubelet is not None
    archive = tmp_path / "code.zip"
    digest = big_zip(archive)
    (warm,) = stack.wait_pods(WARM, 1)
    agent_spec = {k.name: k for k in warm.spec.containers}["agent"]
    limit_kb = int(parse_quantity(agent_spec.resources.limits["memory"])) // 1024
    assert limit_kb == 128 * 1024  # the operator's default (--agent-memory, the chart's value)
    run = stack.cluster.kubelet.pods[(stack.ns, warm.metadata.name)]
    (agent,) = [k for k in run.mains if k.name == "agent"]
    assert agent.proc is not None
    pid = agent.proc.pid
    before = status_kb(pid, "VmRSS")
    reset_peak(pid)
    with _served(archive) as url:
        stack.apply(
            "functions",
            "bigzip",
            {"runtime": RUNTIME, "handler": "app.handler", "code": {"url": url, "sha256": digest}},
        )
        stack.wait_state("functions", "bigzip", "Active")
        stack.wait_servable("bigzip")
        served = stack.invoke("bigzip")
    assert served["body"] == BIG_ZIP_MB * 1024 * 1024, served["body"]
    (claimed,) = stack.claimed_pods("kubelambda.dev/function=bigzip")
    assert claimed.metadata.name == warm.metadata.name  # the pod whose agent was measured
    peak = status_kb(pid, "VmHWM")
    size_kb = archive.stat().st_size // 1024
    print(f"agent RSS {before} KiB, peak {peak} KiB (limit {limit_kb}) for a {size_kb} KiB zip")
    assert peak < limit_kb * 0.75, f"the agent peaked at {peak} KiB of its {limit_kb} KiB limit"
    assert peak - before < size_kb * 0.3, f"its peak grew {peak - before} KiB for {size_kb} KiB"


@pytest.mark.slow  # over a minute of wall time: make test-slow
def test_on_a_cold_node_a_40_s_image_pull_loses_no_pod(
    cluster: Cluster, lambda_crds: list[Any], tmp_path: Path
) -> None:
    """The runtime image takes 40 s to pull: the first warm and provisioned pods wait for it,
    become Ready and serve; none is restarted, failed or replaced meanwhile."""
    assert cluster.kubelet is not None
    image = f"public.ecr.aws/lambda/python:3.12-cold{uuid.uuid4().hex[:8]}"  # never pulled yet
    cluster.kubelet.images.delay_pulls(image, PULL_SECONDS)
    with running_stack(cluster, tmp_path, warm=1, runtime_image=image) as stack:
        started = time.monotonic()
        stack.function("cold", handler_code('os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]'))
        stack.wait_state("functions", "cold", "Active")
        stack.apply("versions", "cold-v1", {"functionName": "cold"})
        stack.wait_state("versions", "cold-v1", "Active")
        alias = {"functionName": "cold", "name": "live", "functionVersion": "1"}
        stack.apply("aliases", "cold-live", {**alias, "provisionedConcurrency": 1})
        seen: dict[str, str] = {}  # uid -> name of every pod of the stack, polled throughout

        def ready() -> bool:
            for pod in stack.pods("kubelambda.dev/pool"):
                seen[pod.metadata.uid] = pod.metadata.name
            status = stack.get("aliases", "cold-live").get("status") or {}
            warm = stack.live_pods(WARM)
            return status.get("provisionedConcurrencyReady") == 1 and any(
                _is_ready(p) for p in warm
            )

        wait_until(ready, timeout=PULL_SECONDS + 90, interval=0.2, what="pods after the pull")
        assert time.monotonic() - started >= PULL_SECONDS * 0.9, "the pull was simulated"
        events = stack.core.list_namespaced_event(stack.ns).items
        assert any(e.reason == "Pulled" and image in (e.message or "") for e in events)
        response = stack.invoke("cold", Qualifier="live")
        assert response["body"] == "provisioned-concurrency"
        for pod in stack.pods("kubelambda.dev/pool"):
            seen[pod.metadata.uid] = pod.metadata.name
            assert pod.status.phase == "Running", pod.metadata.name
            assert _is_ready(pod), pod.metadata.name
            statuses = {s.name: s for s in pod.status.container_statuses}
            restarts = {name: s.restart_count for name, s in statuses.items()}
            assert restarts == {"runtime": 0, "agent": 0}, (pod.metadata.name, restarts)
            assert all(s.state.running is not None for s in statuses.values()), statuses
            # The kubelet started the runtime (after its pull) before the agent.
            runtime, agent = (statuses[n].state.running.started_at for n in ("runtime", "agent"))
            assert runtime <= agent, (pod.metadata.name, runtime, agent)
        # One warm pod and one provisioned pod were ever made (the claimed warm pod's refill
        # comes after the pull, so it may exist too): nothing failed and was replaced.
        pools = [
            p.metadata.labels["kubelambda.dev/pool"] for p in stack.pods("kubelambda.dev/pool")
        ]
        assert pools.count("provisioned") == 1
        assert len(seen) == len(stack.pods("kubelambda.dev/pool")), seen


def _is_ready(pod: Any) -> bool:
    conditions = (pod.status and pod.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)
