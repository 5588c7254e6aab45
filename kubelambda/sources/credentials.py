"""How a poller proves who it is to a gateway that checks invoke auth.

Two forms, as the gateway accepts them: a bearer token (a projected ServiceAccount token, for
`--auth kubernetes`), re-read on every call because the kubelet rotates it; or a SigV4 key read
from a keys file in the gateway's own format (`keys: [{accessKeyId, secretAccessKey, ...}]`, the
chart mounts the gateway's Secret), with requests signed by botocore's signer (service `lambda`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml


class CredentialsError(ValueError):
    """The credentials file cannot be used; the message names it and the field."""


class Credentials(Protocol):
    def headers(
        self, method: str, url: str, body: bytes, headers: dict[str, str]
    ) -> dict[str, str]:
        """`headers` plus what authenticates this request."""
        ...


@dataclass(frozen=True)
class BearerToken:
    path: Path

    def headers(
        self, method: str, url: str, body: bytes, headers: dict[str, str]
    ) -> dict[str, str]:
        return {**headers, "Authorization": f"Bearer {self.path.read_text().strip()}"}


@dataclass(frozen=True)
class SigV4Key:
    access_key_id: str
    secret_access_key: str
    region: str

    def headers(
        self, method: str, url: str, body: bytes, headers: dict[str, str]
    ) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials as BotoCredentials

        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        signer = SigV4Auth(
            BotoCredentials(self.access_key_id, self.secret_access_key), "lambda", self.region
        )
        signer.add_auth(request)
        return dict(request.headers.items())


def read_sigv4_key(path: Path, region: str) -> SigV4Key:
    """The first key of a gateway keys file; CredentialsError when there is none."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CredentialsError(f"--sigv4-keys {path}: {exc}") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    first = keys[0] if isinstance(keys, list) and keys else None
    if not isinstance(first, dict) or not first.get("accessKeyId"):
        raise CredentialsError(f"--sigv4-keys {path}: keys[0].accessKeyId is missing")
    if not first.get("secretAccessKey"):
        raise CredentialsError(f"--sigv4-keys {path}: keys[0].secretAccessKey is missing")
    return SigV4Key(str(first["accessKeyId"]), str(first["secretAccessKey"]), region)
