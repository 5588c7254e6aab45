"""The function pod: from a pod request and the operator's configuration to a Pod manifest. Pure.

Anatomy (see operator/README.md): an `agent` container from the kubelambda image serves the
gateway on port 8080; the function's runtime runs in a `runtime` container from the runtime's
official base image (`--runtime-image`), held by a POSIX-sh shim (runtime/handshake.py) until the
agent releases it. The two share emptyDirs for the handshake, /var/task and /opt, and a PID
namespace (the agent signals the runtime and reads its memory). The runtime container comes
first, so the kubelet pulls its image before it starts the agent. A runtime with no configured
image keeps the one-container anatomy: the agent runs the runtime as its own child. The agent
specializes when the gateway claims the pod (generic and function pools) or at start from the
`kubelambda.dev/spec` annotation, mounted through the downward API (provisioned pods), with
the ConfigMaps its code comes from mounted beside it (`mounted_code`: never code in an annotation).
Every pod meets the Pod Security "restricted" profile, mounts no ServiceAccount token unless the
function has a role, requests CPU in proportion to memory (1769 MB = 1 vCPU; capped only with
`--cpu-limits`), has an ephemeral-storage limit, and is placed by the function's architecture
and placement overrides.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from kubelambda.kube import contract as c
from kubelambda.kube.agentauth import agent_token
from kubelambda.kube.contract import Pool
from kubelambda.operator.config import OperatorConfig
from kubelambda.runtime.agent_app import TOKEN_ENV
from kubelambda.runtime.envvars import is_python
from kubelambda.runtime.handshake import BOOTSTRAP_PATHS, HANDSHAKE_DIR, PYSHIM, SHIM
from kubelambda.runtime.spec import CodeRef, EnvironmentSpec
from kubelambda.serving.shape import IMAGE_ENTRYPOINT, PodShape

MB_PER_VCPU = 1769  # Lambda: a function gets one full vCPU at 1769 MB
CODE_STORAGE_MB = 512  # code, layers and logs, on top of the function's /tmp
SPEC_DIR = "/etc/kubelambda"
ARCH_LABEL = "kubernetes.io/arch"
ARCHES = {"x86_64": "amd64", "arm64": "arm64"}
UID = 65532  # the image's non-root user
TASK_ROOT = "/var/task"
AGENT_LAYERS = "/var/kubelambda/layers"  # the runtime container's /opt (the agent's has its venv)
# Probes: the agent answers /healthz as soon as its port is open and /readyz 503 until warm,
# so liveness never kills a pod still fetching code; readiness is gentle (a busy agent on a
# small CPU share must not flap, and every flap is a status write).
READINESS_FAILURES = 3
LIVENESS_PERIOD = 10


@dataclass(frozen=True)
class PodRequest:
    """One pod the operator decided to create."""

    pool: Pool
    namespace: str
    shape: PodShape
    function: str | None = None
    version: str | None = None  # "$LATEST" or a number
    revision: str | None = None  # provisioned: the spec revision it serves
    spec_json: str | None = None  # provisioned: the EnvironmentSpec to specialize with at start
    owner: dict[str, Any] | None = None  # an ownerReference (the Function), for GC
    extra_labels: dict[str, str] = field(default_factory=dict)
    # The pod's agent token derives from it; random, so it takes no part in comparisons.
    nonce: str = field(default_factory=lambda: secrets.token_hex(16), compare=False)


def cpu_millis(memory_mb: int) -> int:
    return max(1, math.ceil(memory_mb * 1000 / MB_PER_VCPU))


def _name_part(text: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")


def generate_name(request: PodRequest) -> str:
    """A generateName prefix short enough for the 5-character suffix within 63 characters."""
    if request.function:
        version = c.version_label(request.version or "").lower()
        base = f"{request.function}-{version}" if version else request.function
    else:
        base = f"warm-{_name_part(request.shape.runtime)}"
    return f"kl-{base}"[:52].rstrip("-") + "-"


def labels_for(request: PodRequest) -> dict[str, str]:
    labels = {
        c.PART_OF: "kubelambda",
        c.MANAGED_BY: c.MANAGER,
        c.POOL: request.pool,
        c.RUNTIME: request.shape.runtime,
        c.STATE: c.FREE_STATES[request.pool],
        c.SHAPE: request.shape.key,
    }
    if request.function:
        labels[c.FUNCTION] = request.function
    if request.version:
        labels[c.VERSION] = c.version_label(request.version)
    if request.revision:
        labels[c.REVISION] = request.revision
    return {**request.extra_labels, **labels}


def security_context() -> dict[str, Any]:
    """The container's part of Pod Security "restricted"."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _resources(
    config: OperatorConfig, cpu_m: int, memory_mb: int, storage_mb: int
) -> dict[str, Any]:
    """Memory and storage capped at the request; CPU requested, capped only with --cpu-limits
    (Lambda lets init burst; a 128 MB function's 73m cap turns a 100 ms init into seconds)."""
    amounts = {
        "cpu": f"{cpu_m}m",
        "memory": f"{memory_mb}Mi",
        "ephemeral-storage": f"{storage_mb}Mi",
    }
    limits = dict(amounts)
    if not config.cpu_limits:
        del limits["cpu"]
    return {"requests": amounts, "limits": limits}


def runtime_image(config: OperatorConfig, shape: PodShape) -> str | None:
    """The image of the runtime container; None: the one-container anatomy."""
    return shape.image or config.runtime_images.get(shape.runtime)


def _runtime(config: OperatorConfig, image: str, shape: PodShape) -> dict[str, Any]:
    """The runtime container: the shim holds the image's entry point until the agent releases."""
    # The function's own image runs as imageConfig says; an official base image runs its
    # ENTRYPOINT, given the handler at release.
    # A custom runtime's Zip (provided.*) runs its own bootstrap from /var/task or /opt: the
    # image's /lambda-entrypoint.sh would exec /var/runtime/bootstrap, which a Zip never fills.
    if shape.image:
        entry = ["image", *shape.entry]
    elif shape.runtime.startswith("provided"):
        entry = ["bootstrap", *BOOTSTRAP_PATHS]
    else:
        entry = ["handler", IMAGE_ENTRYPOINT]
    # An image carries its code in /var/task and /opt: nothing may cover them, and it runs in
    # its own working directory (or imageConfig's), so the shim does not change folder.
    task_root = "" if shape.image else TASK_ROOT
    mounts = [{"name": "handshake", "mountPath": HANDSHAKE_DIR}]
    if not shape.image:
        mounts += [
            {"name": "task", "mountPath": TASK_ROOT},
            {"name": "layers", "mountPath": "/opt"},
        ]
    mounts.append({"name": "tmp", "mountPath": "/tmp"})
    # Kubernetes expands $(VAR) and turns $$ into $ in commands: escape the shell's $$.
    command = ["/bin/sh", "-c", SHIM.replace("$$", "$$$$"), "kubelambda-shim"]
    if entry[0] == "handler" and is_python(shape.runtime):
        # A Python base image: the warm Python shim pre-imports the runtime interface client,
        # so a release forks a child that only imports the handler (~50 ms less per start).
        command = ["python3", "-c", PYSHIM.replace("$", "$$")]
    container: dict[str, Any] = {
        "name": "runtime",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [*command, HANDSHAKE_DIR, task_root, *entry],
        "resources": _resources(
            config, cpu_millis(shape.memory), shape.memory, shape.ephemeral_storage
        ),
        "securityContext": security_context(),
        "volumeMounts": mounts,
    }
    if shape.workdir:
        container["workingDir"] = shape.workdir
    return container


def _agent(config: OperatorConfig, request: PodRequest) -> dict[str, Any]:
    shape = request.shape
    args = [
        "agent",
        f"--runtime={request.shape.runtime}",
        "--host=0.0.0.0",
        f"--port={c.AGENT_PORT}",
        # Any free loopback port: the agent hands its address to the runtime it starts.
        "--runtime-api-port=0",
        "--work-dir=/tmp/environment",
    ]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    resources = _resources(
        config,
        cpu_millis(shape.memory),
        shape.memory + config.agent_memory,
        shape.ephemeral_storage + CODE_STORAGE_MB,
    )
    if runtime_image(config, shape) is not None:
        args += [
            f"--runtime-container={HANDSHAKE_DIR}",
            f"--task-root={TASK_ROOT}",
            f"--layers-dir={AGENT_LAYERS}",
            # Normally the kubelet starts the runtime container first; waiting is harmless.
            f"--runtime-start-timeout={config.start_timeout:g}",
        ]
        mounts = [
            {"name": "agent-tmp", "mountPath": "/tmp"},
            {"name": "handshake", "mountPath": HANDSHAKE_DIR},
            {"name": "task", "mountPath": TASK_ROOT},
            {"name": "layers", "mountPath": AGENT_LAYERS},
        ]
        resources = _resources(config, config.agent_cpu, config.agent_memory, CODE_STORAGE_MB)
    if request.spec_json is not None:
        args.append(f"--spec={SPEC_DIR}/spec.json")
        mounts.append({"name": "spec", "mountPath": SPEC_DIR, "readOnly": True})
    return {
        "name": "agent",
        "image": config.agent_image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "ports": [{"name": "control", "containerPort": c.AGENT_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "TMPDIR", "value": "/tmp"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            *(
                [{"name": TOKEN_ENV, "value": agent_token(config.agent_key, request.nonce)}]
                if config.agent_key
                else []
            ),
        ],
        # Until the agent has imported and bound its port (the image is pulled by then: probes
        # start with the container), within the operator's own deadline for a pod to be Ready.
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": "control"},
            "periodSeconds": 1,
            "failureThreshold": max(10, math.ceil(config.start_timeout)),
            "timeoutSeconds": 2,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "control"},
            "periodSeconds": config.readiness_period,
            "failureThreshold": READINESS_FAILURES,
            "timeoutSeconds": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "control"},
            "periodSeconds": LIVENESS_PERIOD,
            "failureThreshold": 3,
            "timeoutSeconds": 2,
        },
        "resources": resources,
        "securityContext": security_context(),
        "volumeMounts": mounts,
    }


def mounted_code(spec_json: str) -> tuple[str, list[dict[str, Any]]]:
    """A provisioned pod's spec as its annotation carries it, and the volume sources it needs.

    The apiserver caps a pod's annotations at 256 KiB and a ConfigMap holds up to 1 MiB, so code
    read from a ConfigMap is never embedded: the pod mounts that ConfigMap beside the spec file
    (`code/<n>/`) and the spec names the mounted file or folder by a relative path, still pinned
    by the operator's sha256. URLs stay URLs (the agent downloads them)."""
    spec = EnvironmentSpec.model_validate_json(spec_json)
    sources: list[dict[str, Any]] = []

    def reference(ref: CodeRef) -> CodeRef:
        origin = ref.origin
        if origin is None or (ref.inline is None and ref.zip_base64 is None):
            return ref
        folder = f"code/{len(sources)}"
        keys = [origin.key] if origin.key is not None else sorted(ref.inline or {})
        items = [{"key": key, "path": f"{folder}/{key}"} for key in keys]
        sources.append({"configMap": {"name": origin.config_map, "items": items}})
        path = f"{folder}/{origin.key}" if origin.key is not None else folder
        return CodeRef(path=path, sha256=ref.sha256, origin=origin)

    referenced = spec.model_copy(
        update={"code": reference(spec.code), "layers": [reference(ref) for ref in spec.layers]}
    )
    return referenced.model_dump_json(by_alias=True), sources


def _volumes(request: PodRequest, two_containers: bool) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": f"{request.shape.ephemeral_storage}Mi"}}
    ]
    if two_containers:
        code = {"sizeLimit": f"{CODE_STORAGE_MB}Mi"}
        volumes += [
            {"name": "agent-tmp", "emptyDir": dict(code)},
            {"name": "handshake", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": "task", "emptyDir": dict(code)},
            {"name": "layers", "emptyDir": dict(code)},
        ]
    if request.spec_json is not None:
        path = f"metadata.annotations['{c.SPEC}']"
        spec_file = {"items": [{"path": "spec.json", "fieldRef": {"fieldPath": path}}]}
        _, mounts = mounted_code(request.spec_json)
        volumes.append(
            {"name": "spec", "projected": {"sources": [{"downwardAPI": spec_file}, *mounts]}}
        )
    return volumes


def _placement(shape: PodShape) -> dict[str, Any]:
    overrides = shape.placement_dict()
    spec: dict[str, Any] = {
        "nodeSelector": {
            ARCH_LABEL: ARCHES.get(shape.architecture, shape.architecture),
            **overrides.get("nodeSelector", {}),
        }
    }
    for manifest_name, pod_field in (
        ("tolerations", "tolerations"),
        ("affinity", "affinity"),
        ("priorityClassName", "priorityClassName"),
        ("runtimeClassName", "runtimeClassName"),
    ):
        if manifest_name in overrides:
            spec[pod_field] = overrides[manifest_name]
    return spec


def build_pod(config: OperatorConfig, request: PodRequest) -> dict[str, Any]:
    """The Pod manifest for a request (the apiserver completes the name from generateName)."""
    shape = request.shape
    image = runtime_image(config, shape)
    annotations = {c.MEMORY: str(shape.memory), c.EPHEMERAL: str(shape.ephemeral_storage)}
    if config.agent_key:
        annotations[c.AGENT_NONCE] = request.nonce
    if request.spec_json is not None:
        annotations[c.SPEC] = mounted_code(request.spec_json)[0]
    if image is not None:
        annotations[f"{c.PREFIX}/runtime-image"] = image
    metadata: dict[str, Any] = {
        "generateName": generate_name(request),
        "namespace": request.namespace,
        "labels": labels_for(request),
        "annotations": annotations,
    }
    if request.owner is not None:
        metadata["ownerReferences"] = [request.owner]
    spec: dict[str, Any] = {
        "restartPolicy": "Never",  # a dead environment is replaced, never restarted in place
        "terminationGracePeriodSeconds": 10,
        "enableServiceLinks": False,
        "automountServiceAccountToken": shape.role is not None,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_agent(config, request)],
        "volumes": _volumes(request, image is not None),
        **_placement(shape),
    }
    if image is not None:
        # The runtime container first: the kubelet pulls and starts containers in order, so on a
        # cold node the agent starts once the runtime's image is there, not 30 s before it.
        spec["containers"].insert(0, _runtime(config, image, shape))
        spec["shareProcessNamespace"] = True  # the agent signals the runtime, reads its VmHWM
    if shape.role is not None:
        spec["serviceAccountName"] = shape.role
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
