"""Code from ConfigMaps, for the cluster path: fetched once per verified digest, served inline;
and the keys of S3 code, read from its `credentialsSecret` and handed to the agent.

The operator digests a ConfigMap when it reconciles the Function (status.codeSha256). Here the
same ConfigMap becomes the `CodeRef` an agent specializes with: one file per key (inline), or
the zip under `key` (zipBase64), pinned to the operator's digest, so an agent refuses content
that changed after the operator looked (as Lambda keeps the code of the last update). The ref
names its ConfigMap (`origin`): a provisioned pod mounts it rather than carry it in an annotation. A
ConfigMap is fetched again only when the digest it should have changes; it is not watched.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable

from kubelambda.api.function import Code, ConfigMapSource, Layer
from kubelambda.kube.client import ApiError, JsonDict, KubeApi, collection
from kubelambda.kube.codefacts import CodeProblem, code_facts, configmap_files
from kubelambda.runtime.spec import CodeOrigin, CodeRef
from kubelambda.serving.catalog import Catalog
from kubelambda.serving.specs import s3_ref

log = logging.getLogger(__name__)
# (namespace, ConfigMap name, key, the digest its content should have)
Wanted = tuple[str, str, str | None, str | None]


def configmap_code_ref(source: ConfigMapSource, configmap: JsonDict, pinned: str | None) -> CodeRef:
    """The CodeRef of a ConfigMap source; raises CodeProblem when it cannot be served."""
    files = configmap_files(configmap)
    if source.key is not None:
        if source.key not in files:
            raise CodeProblem(f"ConfigMap {source.name} has no key {source.key!r}")
        data = base64.b64encode(files[source.key]).decode()
        origin = CodeOrigin(config_map=source.name, key=source.key)
        return CodeRef(zip_base64=data, sha256=pinned, origin=origin)
    if configmap.get("binaryData"):
        raise CodeProblem(f"ConfigMap {source.name}: binary files need `key` (a zip)")
    inline = {k: v.decode() for k, v in files.items()}
    return CodeRef(inline=inline, sha256=pinned, origin=CodeOrigin(config_map=source.name))


# Keys a credentials Secret may hold, in the order they are tried.
ACCESS_KEYS = ("AWS_ACCESS_KEY_ID", "accessKeyId", "accesskey")
SECRET_KEYS = ("AWS_SECRET_ACCESS_KEY", "secretAccessKey", "secretkey")
TOKEN_KEYS = ("AWS_SESSION_TOKEN", "sessionToken")


def _secret_value(secret: JsonDict, names: tuple[str, ...]) -> str | None:
    data = secret.get("data") or {}
    for name in names:
        if name in data:
            return base64.b64decode(data[name]).decode()
    return None


def s3_code_ref(source: Code | Layer, secret: JsonDict, pinned: str | None) -> CodeRef:
    """The CodeRef of an S3 source whose keys are in a Secret; raises CodeProblem."""
    assert source.s3 is not None
    access = _secret_value(secret, ACCESS_KEYS)
    key = _secret_value(secret, SECRET_KEYS)
    if not access or not key:
        raise CodeProblem(
            f"Secret {source.s3.credentials_secret} needs AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY"
        )
    if pinned is None:
        raise CodeProblem("code.s3 needs sha256, so the download can be verified")
    where = s3_ref(source.s3, access, key, _secret_value(secret, TOKEN_KEYS))
    return CodeRef(s3=where, sha256=pinned)


def wanted_secrets(catalog: Catalog) -> set[tuple[str, str]]:
    """(namespace, Secret) of every S3 source with a credentialsSecret."""
    found: set[tuple[str, str]] = set()
    for entry in catalog.functions.values():
        for version in (entry.latest, *entry.versions.values()):
            for source in (version.spec.code, *version.spec.layers):
                if source.s3 is not None and source.s3.credentials_secret:
                    found.add((version.namespace, source.s3.credentials_secret))
    return found


def wanted_configmaps(catalog: Catalog) -> set[Wanted]:
    """Every ConfigMap the catalog's code and layers come from."""
    found: set[Wanted] = set()
    for entry in catalog.functions.values():
        for version in (entry.latest, *entry.versions.values()):
            sources: Iterable[tuple[Code | Layer, str | None]] = [
                (version.spec.code, version.code_sha256),
                *((layer, layer.sha256) for layer in version.spec.layers),
            ]
            for source, digest in sources:
                cm = source.config_map
                if cm is not None:
                    found.add((version.namespace, cm.name, cm.key, digest))
    return found


class ConfigMapCode:
    """A cache of the ConfigMaps code comes from, keyed by (namespace, name), and of the
    Secrets that hold the keys of S3 code (read again on every refresh: keys rotate)."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self.docs: dict[tuple[str, str], JsonDict] = {}
        self.secrets: dict[tuple[str, str], JsonDict] = {}
        self.fetches = 0

    def _fresh(self, namespace: str, name: str, key: str | None, digest: str | None) -> bool:
        doc = self.docs.get((namespace, name))
        if doc is None:
            return False
        if digest is None:
            return True
        try:
            source = Code(config_map=ConfigMapSource(name=name, key=key))
            return code_facts(source, doc).sha256 == digest
        except CodeProblem:
            return False

    async def refresh(self, catalog: Catalog) -> None:
        """Fetch the ConfigMaps not held yet, or held with other content than verified."""
        for namespace, name, key, digest in sorted(wanted_configmaps(catalog), key=str):
            if self._fresh(namespace, name, key, digest):
                continue
            path = f"{collection('', 'v1', 'configmaps', namespace)}/{name}"
            try:
                self.docs[(namespace, name)] = await self.api.get(path)
                self.fetches += 1
            except ApiError as exc:
                log.warning("code ConfigMap %s/%s: %s", namespace, name, exc)
        for namespace, name in sorted(wanted_secrets(catalog)):
            path = f"{collection('', 'v1', 'secrets', namespace)}/{name}"
            try:
                self.secrets[(namespace, name)] = await self.api.get(path)
            except ApiError as exc:
                log.warning("code credentials Secret %s/%s: %s", namespace, name, exc)

    def resolve(self, namespace: str, source: Code | Layer, digest: str | None) -> CodeRef | None:
        """A `CodeResolver` for `environment_spec`: ConfigMap sources, and S3 sources with a
        credentials Secret; None for any other."""
        if source.s3 is not None and source.s3.credentials_secret:
            secret = self.secrets.get((namespace, source.s3.credentials_secret))
            if secret is None:
                return None  # the spec builder then says the source cannot be served
            try:
                return s3_code_ref(source, secret, source.sha256 or digest)
            except CodeProblem as exc:
                log.warning("code s3 %s: %s", source.s3.bucket, exc)
                return None
        if source.config_map is None:
            return None
        doc = self.docs.get((namespace, source.config_map.name))
        if doc is None:
            return None  # the spec builder then says the source cannot be served
        try:
            return configmap_code_ref(source.config_map, doc, source.sha256 or digest)
        except CodeProblem as exc:
            log.warning("code ConfigMap %s/%s: %s", namespace, source.config_map.name, exc)
            return None
