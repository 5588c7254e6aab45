"""The cluster path end to end on the real control plane (kube-apiserver, controller-manager,
scheduler): the real `kubelambda operator` (kopf) and `kubelambda gateway --cluster` as
subprocesses, function pods bound by the real scheduler and run by the process kubelet as local
processes, boto3 as the client.

One stack serves the scenarios of this module in order (each uses its own function names), so
the suite pays for starting the operator, the gateway and the warm pool once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import kubernetes_validate
import pytest
from kubernetes.utils import parse_quantity

from kubelambda.runtime.archive import tree_digest
from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.waiting import wait_until
from tests.cluster.lambda_stack import RUNTIME, LambdaStack, handler_code, running_stack

WARM = f"kubelambda.dev/pool=generic,kubelambda.dev/runtime={RUNTIME},kubelambda.dev/state=warm"


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, lambda_crds: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaStack]:
    with running_stack(cluster, tmp_path_factory.mktemp("stack")) as running:
        yield running


def test_function_becomes_active_with_its_code_digest(stack: LambdaStack) -> None:
    stack.function("hello", handler_code('{"hello": event.get("name", "world")}'))
    fn = stack.wait_state("functions", "hello", "Active")
    status = fn["status"]
    assert len(status["codeSha256"]) == 64
    assert status["codeSize"] > 0
    assert status["lastUpdateStatus"] == "Successful"
    assert status["observedGeneration"] == fn["metadata"]["generation"]


def test_warm_pool_reaches_its_size(stack: LambdaStack) -> None:
    pods = stack.wait_pods(WARM, stack.warm)
    assert all(p.metadata.labels["app.kubernetes.io/part-of"] == "kubelambda" for p in pods)


def test_invoke_claims_and_specializes_a_warm_pod_and_the_pool_refills(
    stack: LambdaStack,
) -> None:
    stack.wait_state("functions", "hello", "Active")
    before = {p.metadata.name for p in stack.wait_pods(WARM, stack.warm)}
    stack.wait_servable("hello")
    response = stack.invoke("hello", {"name": "kube"}, LogType="Tail")
    assert response["StatusCode"] == 200, stack.logs()
    assert response["body"] == {"hello": "kube"}
    assert response["ExecutedVersion"] == "$LATEST"
    claimed = stack.claimed_pods("kubelambda.dev/function=hello")
    assert claimed[0].metadata.name in before, "a warm pod was claimed, not a new one made"
    assert claimed[0].metadata.labels["kubelambda.dev/claimed-by"] == "gw-a"
    refilled = stack.wait_pods(WARM, stack.warm)
    assert claimed[0].metadata.name not in {p.metadata.name for p in refilled}
    # The runtime container's Python shim runs our bootstrap (shipped by the agent) on the
    # pipe channel, as dev mode does, not awslambdaric over HTTP.
    state = stack.agent_state(claimed[0].metadata.name)
    assert (state["channel"], state["runtime"]) == ("pipe", RUNTIME), state
    # The second call is warm: the same pod, no new claim.
    again = stack.invoke("hello", {"name": "again"})
    assert again["body"] == {"hello": "again"}
    assert [p.metadata.name for p in stack.live_pods("kubelambda.dev/function=hello")] == [
        claimed[0].metadata.name
    ]


def test_publishing_two_versions_numbers_and_freezes_them(stack: LambdaStack) -> None:
    stack.function("pub", handler_code('"one"'))
    first_sha = stack.wait_state("functions", "pub", "Active")["status"]["codeSha256"]
    stack.apply("versions", "pub-v1", {"functionName": "pub"})
    v1 = stack.wait_state("versions", "pub-v1", "Active")
    assert v1["spec"]["version"] == 1 and v1["status"]["version"] == 1
    assert v1["status"]["codeSha256"] == first_sha
    assert v1["spec"]["function"]["code"] == {"inline": handler_code('"one"')}

    stack.patch_spec("functions", "pub", {"code": {"inline": handler_code('"two"')}})
    fn = stack.wait_state("functions", "pub", "Active", observedGeneration=2)
    assert fn["status"]["codeSha256"] != first_sha
    stack.apply("versions", "pub-v2", {"functionName": "pub"})
    v2 = stack.wait_state("versions", "pub-v2", "Active")
    assert v2["spec"]["version"] == 2
    assert stack.get("functions", "pub")["status"]["latestVersion"] == 2

    stack.wait_servable("pub", "2")
    # Under load the gateway has been seen answering :2 before :1 (noted for the next round);
    # this test is about numbering and freezing, so it waits for both.
    stack.wait_servable("pub", "1")
    assert stack.invoke("pub", Qualifier="1")["body"] == "one"
    two = stack.invoke("pub", Qualifier="2")
    assert (two["body"], two["ExecutedVersion"]) == ("two", "2")


def test_versions_published_at_once_never_share_a_number(stack: LambdaStack) -> None:
    stack.function("race", handler_code("1"))
    stack.wait_state("functions", "race", "Active")
    for index in range(3):
        stack.apply("versions", f"race-{index}", {"functionName": "race"})
    numbers = sorted(
        stack.wait_state("versions", f"race-{i}", "Active")["status"]["version"] for i in range(3)
    )
    assert numbers == [1, 2, 3]
    assert stack.get("functions", "race")["status"]["latestVersion"] == 3


def test_a_codesha256_precondition_that_does_not_match_fails_the_version(
    stack: LambdaStack,
) -> None:
    stack.wait_state("functions", "race", "Active")
    stack.apply("versions", "race-pinned", {"functionName": "race", "codeSha256": "0" * 64})
    failed = stack.wait_state("versions", "race-pinned", "Failed")
    assert "spec.codeSha256" in failed["status"]["stateReason"]
    assert "version" not in failed["spec"], "no number is taken by a refused publication"


def test_a_weighted_alias_splits_calls(stack: LambdaStack) -> None:
    stack.wait_state("versions", "pub-v2", "Active")
    spec = {
        "functionName": "pub",
        "name": "live",
        "functionVersion": "1",
        "routingConfig": {"additionalVersionWeights": {"2": 0.5}},
    }
    stack.apply("aliases", "pub-live", spec)
    alias = stack.wait_state("aliases", "pub-live", "Active")
    assert alias["status"]["routing"] == "1=50% 2=50%"
    stack.wait_servable("pub", "live")
    executed = [stack.invoke("pub", Qualifier="live")["ExecutedVersion"] for _ in range(40)]
    # Binomial(40, 0.5): fewer than 6 of either happens with probability ~2e-6.
    assert executed.count("1") >= 6 and executed.count("2") >= 6, executed
    assert set(executed) == {"1", "2"}


def test_an_alias_to_a_version_that_does_not_exist_waits_pending(stack: LambdaStack) -> None:
    spec = {"functionName": "pub", "name": "future", "functionVersion": "9"}
    stack.apply("aliases", "pub-future", spec)
    pending = stack.wait_state("aliases", "pub-future", "Pending")
    assert "spec.functionVersion" in pending["status"]["stateReason"]


def test_provisioned_concurrency_precreates_specialized_pods(stack: LambdaStack) -> None:
    code = handler_code('os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]')
    stack.function("prov", code)
    stack.wait_state("functions", "prov", "Active")
    stack.apply("versions", "prov-v1", {"functionName": "prov"})
    stack.wait_state("versions", "prov-v1", "Active")
    alias = {"functionName": "prov", "name": "hot", "functionVersion": "1"}
    stack.apply("aliases", "prov-hot", {**alias, "provisionedConcurrency": 2})
    stack.wait_state("aliases", "prov-hot", "Active", provisionedConcurrencyReady=2)
    # The operator made two pods specialized at start; the gateway claims both as provisioned.
    pods = stack.wait_pods(
        "kubelambda.dev/pool=provisioned,kubelambda.dev/function=prov,kubelambda.dev/state=claimed",
        2,
    )
    assert {p.metadata.labels["kubelambda.dev/version"] for p in pods} == {"1"}
    for _ in range(3):
        response = stack.invoke("prov", Qualifier="hot", LogType="Tail")
        assert response["body"] == "provisioned-concurrency"
        report = _report_line(response)
        assert "Init Duration" not in report, report
    assert len(stack.live_pods("kubelambda.dev/function=prov")) == 2, "no other pod was used"


def _report_line(response: dict[str, object]) -> str:
    import base64

    tail = base64.b64decode(str(response["LogResult"])).decode()
    return next(line for line in tail.splitlines() if line.startswith("REPORT"))


def test_reserved_concurrency_throttles_with_429(stack: LambdaStack) -> None:
    stack.function("frozen", handler_code("1"), reservedConcurrency=0)
    stack.function(
        "narrow", handler_code('__import__("time").sleep(2) or 1'), reservedConcurrency=1
    )
    stack.wait_state("functions", "frozen", "Active")
    stack.wait_state("functions", "narrow", "Active")
    stack.wait_servable("frozen")
    stack.wait_servable("narrow")
    client = stack.lambda_client()
    with pytest.raises(client.exceptions.TooManyRequestsException) as refused:
        client.invoke(FunctionName="frozen", Payload=b"{}")
    assert refused.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429

    def call(_: int) -> str:
        try:
            return str(stack.invoke("narrow", client=client)["StatusCode"])
        except client.exceptions.TooManyRequestsException as exc:
            return str(exc.response["Reason"])

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(call, range(4)))
    assert outcomes.count("200") == 1, outcomes
    assert outcomes.count("ReservedFunctionConcurrentInvocationLimitExceeded") == 3, outcomes


def test_updating_the_code_changes_latest_only(stack: LambdaStack) -> None:
    stack.function("mutable", handler_code('"old"'))
    stack.wait_state("functions", "mutable", "Active")
    stack.apply("versions", "mutable-v1", {"functionName": "mutable"})
    stack.wait_state("versions", "mutable-v1", "Active")
    stack.wait_servable("mutable", "1")
    assert stack.invoke("mutable")["body"] == "old"
    assert stack.invoke("mutable", Qualifier="1")["body"] == "old"
    latest_pod = _serving_pod(stack, "mutable", "LATEST")

    stack.patch_spec("functions", "mutable", {"code": {"inline": handler_code('"new"')}})
    stack.wait_state("functions", "mutable", "Active", observedGeneration=2)
    wait_until(
        lambda: stack.invoke("mutable")["body"] == "new",
        timeout=15,
        what="$LATEST to run the new code",
    )
    assert stack.invoke("mutable", Qualifier="1")["body"] == "old", "version 1 is frozen"
    # The environment that ran the old $LATEST is released and deleted; version 1's stays.
    stack.wait_pod_gone(latest_pod)
    assert _serving_pod(stack, "mutable", "1")


def _serving_pod(stack: LambdaStack, function: str, version: str) -> str:
    selector = f"kubelambda.dev/function={function},kubelambda.dev/version={version}"
    (pod,) = stack.claimed_pods(selector)
    return str(pod.metadata.name)


def test_deleting_a_function_removes_its_pods(stack: LambdaStack) -> None:
    stack.function("doomed", handler_code("1"))
    stack.wait_state("functions", "doomed", "Active")
    stack.wait_servable("doomed")
    assert stack.invoke("doomed")["body"] == 1
    assert stack.claimed_pods("kubelambda.dev/function=doomed")
    stack.delete("functions", "doomed")
    stack.wait_no_pods("kubelambda.dev/function=doomed")


def test_an_invalid_function_fails_with_a_message_naming_the_field(stack: LambdaStack) -> None:
    # The apiserver's schema cannot know reserved variable names, so the object is stored; the
    # operator refuses it (on a real apiserver too).
    stack.function("broken", handler_code("1"), environment={"variables": {"AWS_REGION": "x"}})
    failed = stack.wait_state("functions", "broken", "Failed")
    reason = failed["status"]["stateReason"]
    assert reason.startswith("spec.environment") and "AWS_REGION" in reason, reason
    assert failed["status"]["lastUpdateStatus"] == "Failed"
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"

    def warned() -> bool:
        events = stack.core.list_namespaced_event(stack.ns).items
        return any(
            e.involved_object.name == "broken" and e.type == "Warning" and "AWS_REGION" in e.message
            for e in events
        )

    wait_until(warned, timeout=15, what="a Warning Event about the invalid Function")
    client = stack.lambda_client()
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="broken", Payload=b"{}")


def test_killing_a_pod_mid_invoke_gives_a_lambda_error_and_the_pod_is_replaced(
    stack: LambdaStack,
) -> None:
    sleepy = '__import__("time").sleep(float(event.get("sleep", 0))) or "done"'
    stack.function("victim", handler_code(sleepy), timeout=30)
    stack.wait_state("functions", "victim", "Active")
    stack.wait_servable("victim")
    assert stack.invoke("victim")["body"] == "done"  # claims and specializes a pod
    victim = _serving_pod(stack, "victim", "LATEST")
    client = stack.lambda_client()

    def call() -> str:
        try:
            reply = client.invoke(FunctionName="victim", Payload=b'{"sleep": 20}')
        except client.exceptions.ServiceException as exc:
            return str(exc.response["Error"]["Code"])
        if reply.get("FunctionError"):  # the agent saw its runtime die before it died itself
            return str(json.loads(reply["Payload"].read()).get("errorType"))
        return "no error"

    with ThreadPoolExecutor(1) as pool:
        outcome = pool.submit(call)
        wait_until(lambda: _agent_busy(stack, victim), timeout=10, what="the invocation to run")
        stack.kill_pod(victim)
        # Which container dies first decides the shape; both are Lambda's errors.
        assert outcome.result(timeout=15) in ("ServiceException", "Runtime.ExitError")
    stack.wait_pod_gone(victim)
    stack.wait_pods(WARM, stack.warm)
    assert stack.invoke("victim")["body"] == "done", "the next call gets a fresh pod"
    assert _serving_pod(stack, "victim", "LATEST") != victim


def _agent_busy(stack: LambdaStack, pod: str) -> bool:
    return stack.agent_state(pod).get("state") == "busy"


def test_two_gateway_replicas_never_claim_the_same_pod(stack: LambdaStack) -> None:
    stack.start_gateway("gw-b")
    sleepy = '__import__("time").sleep(1) or "ok"'
    stack.function("shared", handler_code(sleepy))
    stack.wait_state("functions", "shared", "Active")
    stack.wait_servable("shared")
    stack.wait_pods(WARM, stack.warm)

    clients = {name: stack.lambda_client(name) for name in ("gw-a", "gw-b")}

    def call(index: int) -> int:
        client = clients["gw-a" if index % 2 else "gw-b"]
        return int(stack.invoke("shared", client=client)["StatusCode"])

    # Six cold starts at once, three per replica, from a warm pool of two: the replicas race
    # for the same pods and wait for the operator's refills.
    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(call, range(6))) == [200] * 6
    won = {
        name: _claims_in_log(stack.gateways[name][0].log(), stack.ns, "shared")
        for name in stack.gateways
    }
    assert len(won["gw-a"]) == len(set(won["gw-a"])) == 3, won
    assert len(won["gw-b"]) == len(set(won["gw-b"])) == 3, won
    assert not set(won["gw-a"]) & set(won["gw-b"]), f"a pod was claimed twice: {won}"
    for pod in stack.live_pods("kubelambda.dev/function=shared"):
        owner = pod.metadata.labels["kubelambda.dev/claimed-by"]
        assert pod.metadata.name in won[owner]


def _claims_in_log(log: str, namespace: str, function: str) -> list[str]:
    suffix = f" for {function}"
    return [
        line.split(f"claimed pod {namespace}/")[1].removesuffix(suffix)
        for line in log.splitlines()
        if f"claimed pod {namespace}/" in line and line.endswith(suffix)
    ]


def test_code_from_a_configmap_is_digested_and_served(stack: LambdaStack) -> None:
    files = {"app.py": "from util import VALUE\n\ndef handler(event, context):\n    return VALUE\n"}
    files["util.py"] = 'VALUE = "from a configmap"\n'
    configmap = {"metadata": {"name": "cm-code"}, "data": files}
    stack.core.create_namespaced_config_map(stack.ns, configmap)
    spec = {
        "runtime": RUNTIME,
        "handler": "app.handler",
        "code": {"configMap": {"name": "cm-code"}},
    }
    stack.apply("functions", "cm", spec)
    status = stack.wait_state("functions", "cm", "Active")["status"]
    assert status["codeSha256"] == tree_digest((k, v.encode()) for k, v in files.items())
    stack.wait_servable("cm")
    assert stack.invoke("cm")["body"] == "from a configmap"


def test_a_function_no_generic_pod_fits_runs_in_its_own_pool(stack: LambdaStack) -> None:
    stack.function("big", handler_code("context.memory_limit_in_mb"), memorySize=1024)
    stack.wait_state("functions", "big", "Active")
    dedicated = "kubelambda.dev/pool=function,kubelambda.dev/function=big"
    (warm,) = stack.wait_pods(dedicated + ",kubelambda.dev/state=warm", 1)
    # The runtime container first; the function's share goes to it.
    runtime, agent = warm.spec.containers
    assert (runtime.name, agent.name) == ("runtime", "agent")
    # The apiserver stores quantities in canonical form (1024Mi reads back as 1Gi).
    limits = {k: parse_quantity(v) for k, v in runtime.resources.limits.items()}
    assert limits == {**limits, "memory": 1024 * 2**20}
    assert "cpu" not in limits  # CPU is requested in proportion, never capped by default
    assert parse_quantity(runtime.resources.requests["cpu"]) == Decimal("0.579")
    assert parse_quantity(agent.resources.limits["memory"]) == 128 * 2**20
    stack.wait_servable("big")
    assert stack.invoke("big")["body"] == "1024"
    (claimed,) = stack.claimed_pods(dedicated)
    assert claimed.metadata.name == warm.metadata.name
    stack.wait_pods(dedicated + ",kubelambda.dev/state=warm", 1)  # refilled


HOG = "{'pid': os.getpid(), 'n': len(bytearray(event['mb'] * 1024 * 1024))}"


def test_a_128_mb_function_on_a_bigger_generic_pod_is_capped_at_128_mb(stack: LambdaStack) -> None:
    """Issue 12, defect 5: the cap is the function's memorySize, not the generic pod's limit; over
    it is Lambda's Runtime.OutOfMemory and the next call runs on a fresh runtime."""
    stack.function("hog", handler_code(HOG), memorySize=128)
    stack.wait_state("functions", "hog", "Active")
    stack.wait_servable("hog")
    first = stack.invoke("hog", {"mb": 16})
    assert first["body"]["n"] == 16 * 1024 * 1024, first
    (claimed,) = stack.claimed_pods("kubelambda.dev/function=hog")
    runtime = next(c for c in claimed.spec.containers if c.name == "runtime")
    assert runtime.resources.limits["memory"] != "128Mi"  # a generic pod, bigger than 128 MB
    over = stack.invoke("hog", {"mb": 1024})
    assert over["FunctionError"] == "Unhandled", over
    assert over["body"]["errorType"] == "Runtime.OutOfMemory"
    assert over["body"]["errorMessage"].endswith("Runtime exited with error: signal: killed")
    after = stack.invoke("hog", {"mb": 16})
    assert after["body"]["n"] == 16 * 1024 * 1024
    assert after["body"]["pid"] != first["body"]["pid"]  # a fresh runtime


@pytest.mark.parametrize("version", ["1.30.0", kubernetes_validate.latest_version()])
def test_every_pod_the_operator_wrote_passes_strict_schema_validation(
    stack: LambdaStack, version: str
) -> None:
    pods = stack.core.api_client.sanitize_for_serialization(stack.pods("kubelambda.dev/pool"))
    pools = {pod["metadata"]["labels"]["kubelambda.dev/pool"] for pod in pods}
    assert pools == {"generic", "provisioned", "function"}, "every kind of pod was made above"
    for pod in pods:
        written = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": pod["metadata"],
            "spec": pod["spec"],
        }
        kubernetes_validate.validate(written, version, strict=True)


def test_an_event_invocation_is_queued_and_run_by_the_cluster_gateway(stack: LambdaStack) -> None:
    stack.function("later", handler_code("event"))
    stack.wait_state("functions", "later", "Active")
    stack.wait_servable("later")
    response = stack.lambda_client().invoke(
        FunctionName="later", InvocationType="Event", Payload=b'{"n": 1}'
    )
    assert response["StatusCode"] == 202
    wait_until(
        lambda: stack.metric("kubelambda_invocations_total", function="later") >= 1,
        timeout=20,
        what="the queued event to be invoked",
    )
    assert stack.claimed_pods("kubelambda.dev/function=later")
