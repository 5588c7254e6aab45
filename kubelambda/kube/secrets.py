"""The Kubernetes Secrets that functions' environment.secretKeyRefs name, for the cluster path.

The gateway GETs each named Secret (its Role allows `get` on secrets in the function namespaces,
nothing more: no list, no watch) whenever the catalog changes, and again every `REFRESH`
seconds (`gateway.cluster.source`) so a rotated value reaches new environments. Values are kept
in memory only and leave the gateway only inside the spec it POSTs to an agent
(`EnvironmentSpec.wire_json`). `lookup` is the `SecretLookup` of the gateway's spec builder.
"""

from __future__ import annotations

import base64
import binascii
import logging

import aiohttp

from kubelambda.kube.client import ApiError, KubeApi, collection
from kubelambda.serving.catalog import Catalog

log = logging.getLogger(__name__)
REFRESH = 60.0


def wanted_secrets(catalog: Catalog) -> set[tuple[str, str]]:
    """(namespace, Secret name) of every secretKeyRef in the catalog."""
    found: set[tuple[str, str]] = set()
    for entry in catalog.functions.values():
        for version in (entry.latest, *entry.versions.values()):
            env = version.spec.environment
            for ref in (env.secret_key_refs if env else {}).values():
                found.add((version.namespace, ref.name))
    return found


def decode_secret(doc: dict[str, object]) -> dict[str, str]:
    """A Secret's data (base64) as text; keys whose value is not UTF-8 are left out."""
    values: dict[str, str] = {}
    data = doc.get("data")
    for key, encoded in (data if isinstance(data, dict) else {}).items():
        try:
            values[str(key)] = base64.b64decode(str(encoded), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
    return values


class ClusterSecrets:
    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self.values: dict[tuple[str, str], dict[str, str]] = {}
        self.fetches = 0

    @property
    def source(self) -> str:
        return "the cluster's Secrets"

    def lookup(self, namespace: str, name: str, key: str) -> str | None:
        return self.values.get((namespace, name), {}).get(key)

    async def refresh(self, catalog: Catalog) -> bool:
        """Read every Secret the catalog names; returns whether any value changed."""
        before = dict(self.values)
        wanted = wanted_secrets(catalog)
        for gone in set(self.values) - wanted:
            del self.values[gone]
        for namespace, name in sorted(wanted):
            path = f"{collection('', 'v1', 'secrets', namespace)}/{name}"
            try:
                doc = await self.api.get(path)
            except ApiError as exc:
                # Never the value: only which Secret could not be read, and why.
                log.warning("Secret %s/%s for secretKeyRefs: HTTP %s", namespace, name, exc.status)
                self.values.pop((namespace, name), None)
                continue
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("Secret %s/%s for secretKeyRefs: %r", namespace, name, exc)
                continue  # keep what was read before: the API server is unreachable
            self.fetches += 1
            self.values[(namespace, name)] = decode_secret(doc)
        return self.values != before
