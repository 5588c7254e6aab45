"""Every pod the operator writes: strict Kubernetes schema (1.30 and the newest known), the Pod
Security "restricted" profile, CPU in proportion to memory, storage limits, placement."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from kubelambda.kube import contract as c
from kubelambda.operator.config import OperatorConfig
from kubelambda.operator.podbuilder import PodRequest, build_pod, cpu_millis, generate_name
from kubelambda.runtime.handshake import PYSHIM, SHIM
from kubelambda.runtime.spec import CodeOrigin, CodeRef, EnvironmentSpec
from kubelambda.serving.shape import PodShape, placement_items

CONFIG = OperatorConfig(
    agent_image="kubelambda/kubelambda:0.1.0",
    namespaces=("default",),
    runtime_images={"python3.12": "public.ecr.aws/lambda/python:3.12"},
    warm_pool={"python3.12": 2},
)
PLACEMENT = {
    "nodeSelector": {"pool": "lambda"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "fn", "effect": "NoSchedule"}
    ],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    },
    "priorityClassName": "functions",
    "runtimeClassName": "gvisor",
}
SPEC_JSON = EnvironmentSpec(
    function_name="hello",
    function_arn="arn:aws:lambda:us-east-1:000000000000:function:hello",
    runtime="python3.12",
    handler="app.handler",
    code=CodeRef(inline={"app.py": "def handler(e, c):\n    return 1\n"}),
).model_dump_json(by_alias=True)

REQUESTS = {
    "generic": PodRequest("generic", "default", CONFIG.generic_shape("python3.12")),
    "provisioned": PodRequest(
        "provisioned",
        "team-a",
        PodShape("python3.12", 1769, 1024),
        function="hello",
        version="3",
        revision="0123456789abcdef",
        spec_json=SPEC_JSON,
        owner={
            "apiVersion": "kubelambda.dev/v1alpha1",
            "kind": "Function",
            "name": "hello",
            "uid": "6a0a7f3e-7c39-4b07-9d43-4f9a8f6a2b10",
        },
    ),
    "function-with-role-and-placement": PodRequest(
        "function",
        "default",
        PodShape("python3.13", 10240, 10240, "arm64", "reader", placement_items(PLACEMENT)),
        function="a-very-long-function-name-that-goes-on-and-on-and-on-for-a-while",
    ),
    "image": PodRequest(
        "function",
        "default",
        PodShape(
            "",
            256,
            512,
            image="registry.example/team/fn:1",
            entry=("/lambda-entrypoint.sh", "app.handler"),
            workdir="/srv",
        ),
        function="fn",
    ),
}
PODS = {name: build_pod(CONFIG, request) for name, request in REQUESTS.items()}


def containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


@pytest.mark.parametrize("version", ["1.30.0", kubernetes_validate.latest_version()])
@pytest.mark.parametrize("name", sorted(PODS))
def test_pods_pass_strict_schema_validation(name: str, version: str) -> None:
    pod = json.loads(json.dumps(PODS[name]))
    pod["metadata"]["name"] = pod["metadata"]["generateName"] + "abcde"  # as the apiserver does
    kubernetes_validate.validate(pod, version, strict=True)


def test_schema_validation_would_catch_a_bad_field() -> None:
    pod = json.loads(json.dumps(PODS["generic"]))
    pod["metadata"]["name"] = "x"
    pod["spec"]["containers"][0]["resourcez"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, "1.30.0", strict=True)


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The Pod Security Standard "restricted" rules (v1.30), as the admission plugin checks."""
    spec, problems = pod["spec"], []
    pod_sc = spec.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            problems.append(key)
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral"}
    allowed_volumes |= {"persistentVolumeClaim", "projected", "secret"}
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= allowed_volumes:
            problems.append(f"volume {volume['name']}: {kinds}")
    for container in containers(pod):
        sc = container.get("securityContext", {})
        where = container["name"]
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            problems.append(f"{where}: runAsNonRoot")
        if 0 in (sc.get("runAsUser"), pod_sc.get("runAsUser")):
            problems.append(f"{where}: runAsUser 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation")
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}: capabilities {caps}")
        seccomp = sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile {seccomp}")
        if any(p.get("hostPort") for p in container.get("ports", [])):
            problems.append(f"{where}: hostPort")
    return problems


@pytest.mark.parametrize("name", sorted(PODS))
def test_pods_meet_pod_security_restricted(name: str) -> None:
    assert restricted_violations(PODS[name]) == []
    for container in containers(PODS[name]):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_restricted_check_catches_violations() -> None:
    pod = json.loads(json.dumps(PODS["generic"]))
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    pod["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    problems = restricted_violations(pod)
    assert any("allowPrivilegeEscalation" in p for p in problems)
    assert any("hostPath" in p for p in problems)


def test_no_service_account_token_unless_a_role_is_set() -> None:
    assert PODS["generic"]["spec"]["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in PODS["generic"]["spec"]
    with_role = PODS["function-with-role-and-placement"]["spec"]
    assert with_role["automountServiceAccountToken"] is True
    assert with_role["serviceAccountName"] == "reader"


@pytest.mark.parametrize(
    ("memory", "millis"), [(128, 73), (1769, 1000), (3538, 2000), (10240, 5789)]
)
def test_cpu_is_proportional_to_memory(memory: int, millis: int) -> None:
    assert cpu_millis(memory) == millis
    pod = build_pod(CONFIG, PodRequest("generic", "default", PodShape("python3.12", memory, 512)))
    runtime, agent = pod["spec"]["containers"]
    resources = runtime["resources"]  # the function's share; the sidecar has its own
    assert resources["requests"]["cpu"] == f"{millis}m"
    assert "cpu" not in resources["limits"]  # by default CPU is requested, never capped
    assert resources["limits"]["memory"] == f"{memory}Mi"
    assert agent["resources"]["requests"] == {
        "cpu": "100m", "memory": "128Mi", "ephemeral-storage": "512Mi"
    }  # fmt: skip
    assert agent["resources"]["limits"]["memory"] == "128Mi"
    # No runtime image configured: the agent runs the runtime itself and takes it all.
    one = build_pod(CONFIG, PodRequest("generic", "default", PodShape("python3.13", memory, 512)))
    (only,) = one["spec"]["containers"]
    assert only["resources"]["requests"]["cpu"] == f"{millis}m"
    assert only["resources"]["limits"]["memory"] == f"{memory + 128}Mi"
    # --cpu-limits: Lambda's proportional CPU as a hard cap, the sidecar capped at its request.
    capped = dataclasses.replace(CONFIG, cpu_limits=True, agent_cpu=250, agent_memory=96)
    runtime, agent = build_pod(
        capped, PodRequest("generic", "default", PodShape("python3.12", memory, 512))
    )["spec"]["containers"]
    assert runtime["resources"]["limits"]["cpu"] == f"{millis}m"
    assert agent["resources"]["limits"] == {
        "cpu": "250m", "memory": "96Mi", "ephemeral-storage": "512Mi"
    }  # fmt: skip


def test_ephemeral_storage_is_limited() -> None:
    pod = PODS["provisioned"]
    storage = [
        int(container["resources"]["limits"]["ephemeral-storage"].removesuffix("Mi"))
        for container in pod["spec"]["containers"]
    ]
    assert storage == [1024, 512]  # the function's /tmp, the agent's code and layers
    tmp = next(v for v in pod["spec"]["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"]["sizeLimit"] == "1024Mi"


def test_architecture_and_placement_overrides() -> None:
    assert PODS["generic"]["spec"]["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    spec = PODS["function-with-role-and-placement"]["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/arch": "arm64", "pool": "lambda"}
    assert spec["tolerations"] == PLACEMENT["tolerations"]
    assert spec["affinity"] == PLACEMENT["affinity"]
    assert spec["priorityClassName"] == "functions"
    assert spec["runtimeClassName"] == "gvisor"


def test_labels_say_pool_runtime_function_version_and_state() -> None:
    labels = PODS["provisioned"]["metadata"]["labels"]
    assert labels[c.PART_OF] == "kubelambda"
    assert labels[c.POOL] == "provisioned"
    assert labels[c.RUNTIME] == "python3.12"
    assert labels[c.FUNCTION] == "hello"
    assert labels[c.VERSION] == "3"
    assert labels[c.STATE] == "ready"
    assert labels[c.REVISION] == "0123456789abcdef"
    generic = PODS["generic"]["metadata"]["labels"]
    assert generic[c.STATE] == "warm" and c.FUNCTION not in generic


def test_provisioned_pods_specialize_at_start_from_their_annotation() -> None:
    pod = PODS["provisioned"]
    assert pod["metadata"]["annotations"][c.SPEC] == SPEC_JSON
    agent = _named(pod, "agent")
    assert "--spec=/etc/kubelambda/spec.json" in agent["args"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "spec")
    assert volume["projected"]["sources"] == [
        {
            "downwardAPI": {
                "items": [
                    {
                        "path": "spec.json",
                        "fieldRef": {"fieldPath": "metadata.annotations['kubelambda.dev/spec']"},
                    }
                ]
            }
        }
    ]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Function"
    assert "--spec=/etc/kubelambda/spec.json" not in _named(PODS["generic"], "agent")["args"]


def test_generated_names_leave_room_for_the_suffix() -> None:
    for request in REQUESTS.values():
        prefix = generate_name(request)
        assert prefix.endswith("-") and len(prefix) + 5 <= 63
    assert generate_name(REQUESTS["provisioned"]) == "kl-hello-3-"
    assert generate_name(REQUESTS["generic"]) == "kl-warm-python3-12-"


def _named(pod: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in pod["spec"]["containers"] if c["name"] == name)
    return found


def test_the_agent_serves_the_gateway_on_8080_with_probes() -> None:
    agent = _named(PODS["generic"], "agent")
    assert agent["image"] == "kubelambda/kubelambda:0.1.0"
    assert agent["args"][:2] == ["agent", "--runtime=python3.12"]
    assert agent["ports"] == [{"name": "control", "containerPort": 8080, "protocol": "TCP"}]
    assert agent["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert agent["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert PODS["generic"]["spec"]["restartPolicy"] == "Never"


def test_probes_survive_a_slow_start_and_readiness_is_gentle() -> None:
    """Issue 16, points 3 and 9: a startupProbe as long as the operator's own deadline for a
    pod to be Ready, no liveness delay guess, and readiness that does not flap on one miss."""
    agent = _named(PODS["generic"], "agent")
    startup = agent["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= CONFIG.start_timeout
    readiness = agent["readinessProbe"]
    assert readiness["periodSeconds"] == CONFIG.readiness_period >= 2
    assert readiness["failureThreshold"] >= 3
    assert "initialDelaySeconds" not in agent["livenessProbe"]
    assert f"--runtime-start-timeout={CONFIG.start_timeout:g}" in agent["args"]


def test_the_runtime_container_starts_first() -> None:
    """The kubelet pulls and starts containers in order: the agent waits for no image."""
    for name in ("generic", "provisioned", "image"):
        assert [c["name"] for c in PODS[name]["spec"]["containers"]] == ["runtime", "agent"]


def test_a_runtime_with_an_image_gets_a_runtime_container_held_by_the_shim() -> None:
    spec = PODS["generic"]["spec"]
    runtime, agent = spec["containers"]
    assert runtime["image"] == "public.ecr.aws/lambda/python:3.12"
    assert spec["shareProcessNamespace"] is True  # the agent signals the runtime
    command = runtime["command"]
    # A Python base image: the warm Python shim (awslambdaric's Python part pre-imported).
    assert command[:2] == ["python3", "-c"] and command[2] == PYSHIM.replace("$", "$$")
    assert command[3:] == ["/kubelambda", "/var/task", "handler", "/lambda-entrypoint.sh"]
    # Any other runtime image: the POSIX sh shim.
    node = dataclasses.replace(
        CONFIG, runtime_images={"nodejs22.x": "public.ecr.aws/lambda/nodejs:22"}
    )
    sh = _named(
        build_pod(node, PodRequest("generic", "default", node.generic_shape("nodejs22.x"))),
        "runtime",
    )
    assert sh["command"][:3] == ["/bin/sh", "-c", SHIM.replace("$$", "$$$$")]
    assert sh["command"][3:] == [
        "kubelambda-shim", "/kubelambda", "/var/task", "handler", "/lambda-entrypoint.sh"
    ]  # fmt: skip
    assert "--runtime-container=/kubelambda" in agent["args"]
    mounts = {
        c["name"]: {m["name"]: m["mountPath"] for m in c["volumeMounts"]} for c in (agent, runtime)
    }
    assert mounts["runtime"] == {
        "handshake": "/kubelambda", "task": "/var/task", "layers": "/opt", "tmp": "/tmp"
    }  # fmt: skip
    assert mounts["agent"]["task"] == "/var/task"  # the same path in both: release.env holds it
    assert mounts["agent"]["agent-tmp"] == "/tmp"  # not the function's /tmp
    assert "livenessProbe" not in runtime and "ports" not in runtime


def test_a_runtime_without_an_image_keeps_one_container() -> None:
    spec = PODS["function-with-role-and-placement"]["spec"]
    (agent,) = spec["containers"]
    assert "shareProcessNamespace" not in spec
    assert not any(a.startswith("--runtime-container") for a in agent["args"])


def test_an_image_function_runs_its_own_image_as_image_config_says() -> None:
    spec = PODS["image"]["spec"]
    runtime, _ = spec["containers"]
    assert runtime["image"] == "registry.example/team/fn:1"
    assert runtime["command"][3:] == [
        "kubelambda-shim", "/kubelambda", "", "image", "/lambda-entrypoint.sh", "app.handler"
    ]  # fmt: skip
    assert runtime["workingDir"] == "/srv"
    # Its own /var/task and /opt hold its code: no volume covers them.
    paths = {m["mountPath"] for m in runtime["volumeMounts"]}
    assert paths == {"/kubelambda", "/tmp"}


def test_a_function_pods_memory_limit_is_its_memory_size() -> None:
    """Issue 12, defect 5: the limit is the function's own memorySize (128 MB here), not the
    generic pool's; a generic pod specialized for it is capped at specialization."""
    from kubelambda.kube import contract as contract

    one = dataclasses.replace(CONFIG, runtime_images={})
    for config, runtime_container in ((CONFIG, True), (one, False)):
        request = PodRequest("function", "default", PodShape("python3.12", 128, 512), "small")
        pod = build_pod(config, request)
        by_name = {c["name"]: c for c in pod["spec"]["containers"]}
        if runtime_container:
            assert by_name["runtime"]["resources"]["limits"]["memory"] == "128Mi"
        else:  # the agent runs the runtime as its child: 128 MB plus its own share
            assert by_name["agent"]["resources"]["limits"]["memory"] == "256Mi"
        assert pod["metadata"]["annotations"][contract.MEMORY] == "128"
    generic = build_pod(CONFIG, REQUESTS["generic"])
    limits = {c["name"]: c["resources"]["limits"]["memory"] for c in generic["spec"]["containers"]}
    assert limits["runtime"] == f"{CONFIG.generic_memory}Mi"


def test_every_pod_gets_its_own_agent_token_from_the_shared_key() -> None:
    """Issue 12, defect 3: the agent's control API needs a token only the key's holders derive."""
    import dataclasses

    from kubelambda.kube.agentauth import agent_token
    from kubelambda.kube.contract import AGENT_NONCE, PodInfo
    from kubelambda.runtime.agent_app import TOKEN_ENV

    keyed = dataclasses.replace(CONFIG, agent_key=b"k" * 32)
    pods = [build_pod(keyed, REQUESTS["generic"]) for _ in range(2)]
    pods.append(build_pod(keyed, PodRequest("generic", "default", REQUESTS["generic"].shape)))
    tokens = set()
    for pod in pods:
        nonce = pod["metadata"]["annotations"][AGENT_NONCE]
        agent = next(c for c in pod["spec"]["containers"] if c["name"] == "agent")
        token = next(e["value"] for e in agent["env"] if e["name"] == TOKEN_ENV)
        assert token == agent_token(b"k" * 32, nonce)  # what a gateway derives from the pod
        assert PodInfo.from_pod(pod).agent_nonce == nonce
        assert token != agent_token(b"x" * 32, nonce)
        tokens.add(token)
    assert len(tokens) == 2  # one request, one nonce; another request, another token
    unkeyed = build_pod(CONFIG, REQUESTS["generic"])
    assert AGENT_NONCE not in unkeyed["metadata"]["annotations"]


def _configmap_spec() -> EnvironmentSpec:
    big = "A" * 1_200_000  # a ConfigMap-sized zip, base64: far over the 256 KiB annotation cap
    return EnvironmentSpec.model_validate_json(SPEC_JSON).model_copy(
        update={
            "code": CodeRef(
                zip_base64=big,
                sha256="ab" * 32,
                origin=CodeOrigin(config_map="hello-code", key="code.zip"),
            ),
            "layers": [
                CodeRef(inline={"lib.py": "x = 1"}, origin=CodeOrigin(config_map="utils")),
                CodeRef(url="https://code.example/l.zip", sha256="cd" * 32),
            ],
        }
    )


def test_configmap_code_is_mounted_beside_the_spec_never_embedded() -> None:
    spec = _configmap_spec()
    request = PodRequest(
        "provisioned",
        "team-a",
        PodShape("python3.12", 128, 512),
        function="hello",
        version="1",
        revision="r",
        spec_json=spec.model_dump_json(by_alias=True),
    )
    pod = build_pod(CONFIG, request)
    annotation = pod["metadata"]["annotations"][c.SPEC]
    assert len(annotation) < 4096  # the code is referenced, not carried
    carried = EnvironmentSpec.model_validate_json(annotation)
    assert carried.code == CodeRef(
        path="code/0/code.zip", sha256="ab" * 32, origin=spec.code.origin
    )
    assert carried.layers[0].path == "code/1" and carried.layers[0].inline is None
    assert carried.layers[1] == spec.layers[1]  # a URL is already a reference
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "spec")
    assert volume["projected"]["sources"][1:] == [
        {
            "configMap": {
                "name": "hello-code",
                "items": [{"key": "code.zip", "path": "code/0/code.zip"}],
            }
        },
        {"configMap": {"name": "utils", "items": [{"key": "lib.py", "path": "code/1/lib.py"}]}},
    ]
    assert restricted_violations(pod) == []
    # The agent reads relative paths from the spec file's folder, where the volume puts them.
    anchored = carried.anchored(Path("/etc/kubelambda"))
    assert anchored.code.path == "/etc/kubelambda/code/0/code.zip"
    assert anchored.layers[0].path == "/etc/kubelambda/code/1"
    assert anchored.layers[1] == spec.layers[1]


def test_a_provided_zip_runs_its_own_bootstrap_from_var_task_or_opt() -> None:
    """Issue 16, point 6: the provided.al2023 image's /lambda-entrypoint.sh execs
    /var/runtime/bootstrap, which a Zip never fills; Lambda runs /var/task/bootstrap, else
    /opt/bootstrap (a layer's)."""
    config = dataclasses.replace(
        CONFIG, runtime_images={"provided.al2023": "public.ecr.aws/lambda/provided:al2023"}
    )
    pod = build_pod(
        config, PodRequest("generic", "default", config.generic_shape("provided.al2023"))
    )
    runtime = _named(pod, "runtime")
    assert runtime["command"][3:] == [
        "kubelambda-shim", "/kubelambda", "/var/task", "bootstrap",
        "/var/task/bootstrap", "/opt/bootstrap",
    ]  # fmt: skip
    mounts = {m["mountPath"] for m in runtime["volumeMounts"]}
    assert {"/var/task", "/opt"} <= mounts  # where the agent puts the code and the layers
