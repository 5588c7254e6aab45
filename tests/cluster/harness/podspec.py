"""How the process kubelet turns a container spec into a local process: image table, argv, env.

Images map to local programs through an explicit table (`ImageTable`): an image pattern gives the
image's ENTRYPOINT/CMD and the in-image executables that exist here (e.g. `kubelambda` → the
console script in this venv). Nothing else from the host is runnable, except files inside the
pod's own volumes. Paths under a volumeMount's mountPath are rewritten to the volume's local
folder in argv, env values and workingDir, and loopback addresses (`127.0.0.1`, `localhost`,
`0.0.0.0`) become the pod's own IP, because in a real pod they mean the pod's network namespace.
"""

from __future__ import annotations

import base64
import fnmatch
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JsonDict = dict[str, Any]
VENV_BIN = Path(sys.executable).parent
IMAGES_DIR = Path(__file__).resolve().parent / "images"  # stand-ins for in-image scripts
_HOST_TOOLS = ("sh", "bash", "env", "sleep", "cat", "true", "false", "echo")


class ContainerConfigError(Exception):
    """A container that cannot start (the kubelet reports CreateContainerConfigError)."""


def _host_tools() -> dict[str, str]:
    tools = {}
    for tool in _HOST_TOOLS:
        found = shutil.which(tool, path="/usr/bin:/bin")
        if found:
            tools[tool] = tools[f"/bin/{tool}"] = tools[f"/usr/bin/{tool}"] = found
    return tools


@dataclass(frozen=True)
class ImageSpec:
    """What the kubelet knows of an image: its ENTRYPOINT, CMD, env and runnable programs."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    executables: Mapping[str, str] = field(default_factory=dict)


def _python_executables(*names: str) -> dict[str, str]:
    return {name: sys.executable for name in names}


def kubelambda_image() -> ImageSpec:
    script = str(VENV_BIN / "kubelambda")
    exes = {"kubelambda": script, "/usr/local/bin/kubelambda": script}
    exes |= _python_executables(
        "python", "python3", "/usr/local/bin/python", "/usr/local/bin/python3"
    )
    return ImageSpec(entrypoint=("kubelambda",), executables=exes | _host_tools())


def lambda_python_image(minor: str = "") -> ImageSpec:
    """public.ecr.aws/lambda/python:3.X: its entrypoint runs awslambdaric on the CMD handler."""
    names = ["python", "python3", "/var/lang/bin/python", "/var/lang/bin/python3"]
    if minor:
        names += [f"python3.{minor}", f"/var/lang/bin/python3.{minor}"]
    env = {
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "LANG": "en_US.UTF-8",
    }
    entrypoint = {"/lambda-entrypoint.sh": str(IMAGES_DIR / "lambda-entrypoint.sh")}
    return ImageSpec(
        entrypoint=("python3", "-m", "awslambdaric"),
        env=env,
        executables=_python_executables(*names) | _host_tools() | entrypoint,
    )


def lambda_provided_image() -> ImageSpec:
    """public.ecr.aws/lambda/provided:al2023: no language runtime; its entrypoint execs
    /var/runtime/bootstrap. A custom runtime's shell and curl come from the host's PATH."""
    env = {"LAMBDA_TASK_ROOT": "/var/task", "LAMBDA_RUNTIME_DIR": "/var/runtime"}
    entrypoint = {"/lambda-entrypoint.sh": str(IMAGES_DIR / "provided-entrypoint.sh")}
    return ImageSpec(
        entrypoint=("/lambda-entrypoint.sh",), env=env, executables=_host_tools() | entrypoint
    )


def plain_python_image() -> ImageSpec:
    names = ("python", "python3", "/usr/local/bin/python", "/usr/local/bin/python3")
    return ImageSpec(
        entrypoint=("python3",), executables=_python_executables(*names) | _host_tools()
    )


class ImageTable:
    """Image patterns (fnmatch globs) to `ImageSpec`s; later entries win, so tests can override."""

    def __init__(self) -> None:
        self._rules: list[tuple[str, Callable[[str], ImageSpec]]] = []
        self._delays: list[tuple[str, float]] = []

    @classmethod
    def default(cls) -> ImageTable:
        table = cls()
        table.add("kubelambda/kubelambda:*", kubelambda_image())
        table.add("*/kubelambda/kubelambda:*", kubelambda_image())
        table.add("python:3*", plain_python_image())
        table.add_factory(
            "public.ecr.aws/lambda/python:3*",
            lambda image: lambda_python_image(image.rsplit(":3.", 1)[-1].split("-")[0]),
        )
        table.add("public.ecr.aws/lambda/provided:al2*", lambda_provided_image())
        return table

    def add(self, pattern: str, spec: ImageSpec) -> None:
        self._rules.append((pattern, lambda _image: spec))

    def add_factory(self, pattern: str, factory: Callable[[str], ImageSpec]) -> None:
        self._rules.append((pattern, factory))

    def delay_pulls(self, pattern: str, seconds: float) -> None:
        """Simulate a cold node: the first use of a matching image waits `seconds` ("pulling")."""
        self._delays.append((pattern, seconds))

    def pull_delay(self, image: str) -> float:
        for pattern, seconds in reversed(self._delays):
            if fnmatch.fnmatchcase(image, pattern):
                return seconds
        return 0.0

    def resolve(self, image: str) -> ImageSpec:
        for pattern, factory in reversed(self._rules):
            if fnmatch.fnmatchcase(image, pattern):
                return factory(image)
        raise ContainerConfigError(f"image {image!r} is not in the process kubelet's image table")


# --- env --------------------------------------------------------------------------------------

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIXES = {
    "": 1, "m": 0.001, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined names are replaced, `$$` escapes, others stay."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(repl, text)


def quantity(text: str | int | float) -> float:
    m = _QUANTITY.match(str(text))
    if not m or m.group(2) not in _SUFFIXES:
        raise ContainerConfigError(f"unparseable quantity {text!r}")
    return float(m.group(1)) * _SUFFIXES[m.group(2)]


def field_ref(pod: JsonDict, path: str) -> str:
    """The downward API: metadata.name/namespace/uid, labels['k'], annotations['k'], status..."""
    m = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path)
    if m:
        return str((pod["metadata"].get(m.group(1)) or {}).get(m.group(2), ""))
    supported = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"].get("namespace", ""),
        "metadata.uid": pod["metadata"].get("uid", ""),
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": pod.get("status", {}).get("podIP", ""),
        "status.hostIP": pod.get("status", {}).get("hostIP", ""),
    }
    if path not in supported:
        raise ContainerConfigError(f"fieldRef {path!r} is not supported")
    return str(supported[path])


# (kind, namespace, name) -> data; a ConfigMap's binaryData keys as bytes
Lookup = Callable[[str, str, str], Mapping[str, str | bytes] | None]


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def container_env(
    pod: JsonDict, container: JsonDict, image: ImageSpec, lookup: Lookup
) -> dict[str, str]:
    """The container's environment: image env, then envFrom, then env, each $(VAR)-expanded."""
    ns = pod["metadata"].get("namespace", "default")
    env = dict(image.env)
    for source in container.get("envFrom") or ():
        kind, ref = (
            ("ConfigMap", source["configMapRef"])
            if "configMapRef" in source
            else ("Secret", source.get("secretRef", {}))
        )
        data = lookup(kind, ns, ref.get("name", ""))
        if data is None and not ref.get("optional"):
            raise ContainerConfigError(f'{kind.lower()} "{ref.get("name")}" not found')
        env |= {source.get("prefix", "") + k: _text(v) for k, v in (data or {}).items()}
    for var in container.get("env") or ():
        value_from = var.get("valueFrom")
        if value_from is None:
            env[var["name"]] = expand(str(var.get("value", "")), env)
        elif "fieldRef" in value_from:
            env[var["name"]] = field_ref(pod, value_from["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in value_from:
            ref = value_from["resourceFieldRef"]
            section, _, resource = ref["resource"].partition(".")
            amount = (container.get("resources", {}).get(section) or {}).get(resource, "0")
            divisor = quantity(ref.get("divisor", "1"))
            env[var["name"]] = str(int(-(-quantity(amount) // divisor)))  # rounded up, as for real
        else:
            kind, key = (
                ("ConfigMap", "configMapKeyRef")
                if "configMapKeyRef" in value_from
                else ("Secret", "secretKeyRef")
            )
            ref = value_from[key]
            data = lookup(kind, ns, ref["name"]) or {}
            if ref["key"] in data:
                env[var["name"]] = _text(data[ref["key"]])
            elif not ref.get("optional"):
                raise ContainerConfigError(
                    f"couldn't find key {ref['key']} in {kind} {ns}/{ref['name']}"
                )
    return env


def secret_data(secret: JsonDict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


# --- paths and argv ---------------------------------------------------------------------------


@dataclass
class Rewriter:
    """In-pod paths → local folders (longest mountPath first) and loopback → the pod IP."""

    mounts: Mapping[str, Path]
    pod_ip: str
    loopback: bool = True

    def __call__(self, text: str) -> str:
        # One pass over all mount paths (longest first), so a folder that was just substituted
        # is never rewritten again by a shorter mount (e.g. /tmp when the test dir is in /tmp).
        if self.mounts:
            ordered = sorted(self.mounts, key=len, reverse=True)
            by_path = {m.rstrip("/"): str(self.mounts[m]) for m in ordered}
            alternatives = "|".join(re.escape(m.rstrip("/")) for m in ordered)
            pattern = rf"(?<![\w./-])(?:{alternatives})(?=/|$|[^\w.-])"
            text = re.sub(pattern, lambda m: by_path[m.group(0)], text)
        if self.loopback:
            text = re.sub(
                r"(?<![\w.-])(?:127\.0\.0\.1|localhost|0\.0\.0\.0)(?![\w.-])", self.pod_ip, text
            )
        return text


def container_argv(container: JsonDict, image: ImageSpec, env: Mapping[str, str]) -> list[str]:
    """Docker's rule: `command` replaces ENTRYPOINT (and drops CMD); `args` replaces CMD."""
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = list(command) + list(args or ())
    else:
        argv = list(image.entrypoint) + list(args if args is not None else image.cmd)
    if not argv:
        raise ContainerConfigError("no command specified and the image has no entrypoint")
    return [expand(str(a), env) for a in argv]


def image_paths(argv: list[str], image: ImageSpec) -> list[str]:
    """Absolute in-image programs named as arguments (`sh -c '...' /lambda-entrypoint.sh`) →
    their local stand-ins, so a shell in the container can run them."""
    return [argv[0], *(image.executables.get(a, a) if a.startswith("/") else a for a in argv[1:])]


def resolve_program(argv0: str, image: ImageSpec, volumes: Mapping[str, Path]) -> str:
    """The local executable for argv[0]: from the image table, or a file inside a volume."""
    if argv0 in image.executables:
        return image.executables[argv0]
    local = Path(argv0)
    if (
        local.is_absolute()
        and any(local.is_relative_to(p) for p in volumes.values())
        and local.exists()
    ):
        return argv0
    raise ContainerConfigError(f'exec: "{argv0}": executable file not found in the image table')
