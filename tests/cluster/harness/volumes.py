"""A pod's volumes as local folders: emptyDir, configMap, secret, downwardAPI and projected
(serviceAccountToken, configMap, secret, downwardAPI sources), as the kubelet lays them out.

The kubelet fetches what the volumes refer to before the pod starts (`referenced`, `tokens`);
`prepare` only writes files. A `ServiceAccount` token comes from the TokenRequest API, bound to
the pod, so a process authenticates as its pod's ServiceAccount. `emptyDir.sizeLimit` is kept
so the pod run can evict a pod whose emptyDir grows past it, as the kubelet's eviction manager
does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster.harness.podspec import ContainerConfigError, Lookup, field_ref, quantity

JsonDict = dict[str, Any]
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TokenKey = tuple[str, int]  # (audience, expirationSeconds); "" is the apiserver's audience


@dataclass
class Volumes:
    paths: dict[str, Path] = field(default_factory=dict)
    size_limits: dict[str, float] = field(default_factory=dict)  # emptyDir name -> bytes


def _sources(volume: JsonDict) -> list[JsonDict]:
    if "projected" in volume:
        return list(volume["projected"].get("sources") or ())
    return [volume]


def referenced(pod: JsonDict) -> Iterator[tuple[str, str, bool]]:
    """(kind, name, optional) of every ConfigMap and Secret the pod's env and volumes use."""
    spec = pod["spec"]
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for source in container.get("envFrom") or ():
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in source:
                    yield kind, source[key]["name"], bool(source[key].get("optional"))
        for var in container.get("env") or ():
            value_from = var.get("valueFrom") or {}
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if key in value_from:
                    yield kind, value_from[key]["name"], bool(value_from[key].get("optional"))
    for volume in spec.get("volumes") or ():
        for source in _sources(volume):
            if "configMap" in source:
                ref = source["configMap"]
                yield "ConfigMap", ref["name"], bool(ref.get("optional"))
            if "secret" in source:
                ref = source["secret"]
                yield "Secret", ref.get("secretName") or ref["name"], bool(ref.get("optional"))


def tokens(pod: JsonDict) -> set[TokenKey]:
    """The ServiceAccount tokens the pod's projected volumes ask for."""
    wanted = set()
    for volume in pod["spec"].get("volumes") or ():
        for source in _sources(volume):
            token = source.get("serviceAccountToken")
            if token is not None:
                wanted.add((token.get("audience", ""), int(token.get("expirationSeconds", 3600))))
    return wanted


def _write(path: Path, content: str | bytes, mode: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    if mode is not None:
        path.chmod(mode)


def _key_files(
    folder: Path,
    kind: str,
    name: str,
    source: JsonDict,
    data: Mapping[str, str | bytes] | None,
    default_mode: int | None,
) -> None:
    if data is None:
        if source.get("optional"):
            return
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    items = source.get("items") or [{"key": k, "path": k} for k in data]
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise ContainerConfigError(f"{kind} {name} has no key {item['key']!r}")
        _write(folder / item["path"], data[item["key"]], item.get("mode", default_mode))


def _downward(folder: Path, pod: JsonDict, items: list[JsonDict], default_mode: int | None) -> None:
    for item in items:
        if "fieldRef" in item:
            value = field_ref(pod, item["fieldRef"]["fieldPath"])
        else:
            raise ContainerConfigError(
                f"downwardAPI item {item['path']}: only fieldRef is supported"
            )
        _write(folder / item["path"], value, item.get("mode", default_mode))


def prepare(pod: JsonDict, root: Path, lookup: Lookup, issued: Mapping[TokenKey, str]) -> Volumes:
    """Write every volume under `root/<name>`; raises ContainerConfigError for what cannot be."""
    ns = pod["metadata"]["namespace"]
    volumes = Volumes()
    for volume in pod["spec"].get("volumes") or ():
        name = volume["name"]
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        volumes.paths[name] = folder
        if "emptyDir" in volume:
            limit = (volume["emptyDir"] or {}).get("sizeLimit")
            if limit is not None:
                volumes.size_limits[name] = quantity(limit)
            continue
        if "projected" in volume:
            mode = volume["projected"].get("defaultMode")
        else:
            mode = (volume.get("configMap") or volume.get("secret") or {}).get("defaultMode")
        for source in _sources(volume):
            if "configMap" in source:
                ref = source["configMap"]
                data = lookup("ConfigMap", ns, ref["name"])
                _key_files(folder, "ConfigMap", ref["name"], ref, data, mode)
            elif "secret" in source:
                ref = source["secret"]
                secret = ref.get("secretName") or ref["name"]
                _key_files(folder, "Secret", secret, ref, lookup("Secret", ns, secret), mode)
            elif "downwardAPI" in source:
                _downward(folder, pod, list(source["downwardAPI"].get("items") or ()), mode)
            elif "serviceAccountToken" in source:
                token = source["serviceAccountToken"]
                key = (token.get("audience", ""), int(token.get("expirationSeconds", 3600)))
                if key not in issued:
                    raise ContainerConfigError(f"no ServiceAccount token was issued for {key}")
                _write(folder / token["path"], issued[key], mode if mode is not None else 0o600)
            else:
                kinds = sorted(set(source) - {"name"})
                raise ContainerConfigError(f"volume {name}: {kinds} is not supported here")
    return volumes


def usage(folder: Path) -> int:
    """Bytes of the files under `folder` (what the kubelet measures for an emptyDir)."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for file in files:
            try:
                total += os.lstat(os.path.join(dirpath, file)).st_size
            except OSError:
                continue
    return total


def pod_kubeconfig(api_url: str, folder: Path | None, namespace: str) -> JsonDict:
    """A kubeconfig for a pod's processes: the apiserver, and the CA and token files of its
    projected ServiceAccount volume (`folder`; none: anonymous), read on every use."""
    cluster: JsonDict = {"server": api_url}
    user: JsonDict = {}
    if folder is not None and (folder / "ca.crt").exists():
        cluster["certificate-authority"] = str(folder / "ca.crt")
    if folder is not None and (folder / "token").exists():
        user["tokenFile"] = str(folder / "token")
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": cluster}],
        "users": [{"name": "pod", "user": user}],
        "contexts": [
            {
                "name": "in-cluster",
                "context": {"cluster": "in-cluster", "user": "pod", "namespace": namespace},
            }
        ],
        "current-context": "in-cluster",
    }
