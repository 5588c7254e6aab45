"""Kubernetes as the auth system: TokenReview for bearer tokens, SubjectAccessReview for every
decision (verb `invoke`, `get` or `list` on `functions.kubelambda.dev`, the resource name
being the function), and the Secret that holds the SigV4 keys in a cluster.

Answers are cached for a few seconds (`cache.TtlCache`), so a warm invocation asks the API
server nothing; a revoked binding takes effect within that time.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from typing import Any

from kubelambda.gateway.auth.cache import TtlCache
from kubelambda.gateway.auth.keys import Key, KeysError, KeySet, parse_keys
from kubelambda.gateway.auth.model import Identity
from kubelambda.kube.client import ApiError, KubeApi

log = logging.getLogger(__name__)
GROUP = "kubelambda.dev"
DECISION_TTL = 5.0  # seconds a decision (or an authenticated token) is reused
DENIAL_TTL = 2.0  # a refusal is reused for less time: a new RoleBinding shows up sooner
SECRET_KEY = "keys.yaml"


class TokenReviews:
    def __init__(self, api: KubeApi, *, ttl: float = DECISION_TTL) -> None:
        self.api = api
        # A 1-tuple, so that a cached "not authenticated" (None) is told from a miss.
        self.cache: TtlCache[tuple[Identity | None]] = TtlCache(ttl)
        self.asked = 0

    async def identity(self, token: str) -> Identity | None:
        """Who the token belongs to, or None when the API server does not authenticate it."""
        key = hashlib.sha256(token.encode()).hexdigest()  # tokens are never kept as they are
        cached = self.cache.get(key)
        if cached is not None:
            return cached[0]
        self.asked += 1
        review = await self.api.create(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token},
            },
        )
        status = review.get("status") or {}
        user = status.get("user") or {}
        found = None
        if status.get("authenticated") and user.get("username"):
            found = Identity(str(user["username"]), tuple(user.get("groups") or ()))
        self.cache.put(key, (found,), None if found else DENIAL_TTL)
        return found


class AccessReviews:
    """The authorizer of cluster mode: one SubjectAccessReview per (caller, verb, function)."""

    def __init__(self, api: KubeApi, *, ttl: float = DECISION_TTL) -> None:
        self.api = api
        self.cache: TtlCache[bool] = TtlCache(ttl)
        self.asked = 0

    async def allowed(
        self, identity: Identity, verb: str, namespace: str, function: str | None
    ) -> bool:
        key = (identity.user, identity.groups, verb, namespace, function)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        self.asked += 1
        attributes: dict[str, Any] = {
            "namespace": namespace,
            "verb": verb,
            "group": GROUP,
            "resource": "functions",
        }
        if function is not None:
            attributes["name"] = function
        review = await self.api.create(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": identity.user,
                    "groups": list(identity.groups),
                    "resourceAttributes": attributes,
                },
            },
        )
        allowed = bool((review.get("status") or {}).get("allowed"))
        self.cache.put(key, allowed, None if allowed else DENIAL_TTL)
        return allowed


class SecretKeys:
    """The SigV4 keys of a cluster: a Secret's `keys.yaml`, read at start and again (at most
    every `every` seconds) when a request names a key it does not know, so rotation needs no
    restart."""

    def __init__(self, api: KubeApi, namespace: str, name: str, *, every: float = 10.0) -> None:
        self.api = api
        self.path = f"/api/v1/namespaces/{namespace}/secrets/{name}"
        self.every = every
        self.keys: dict[str, Key] = {}
        self._read_at = float("-inf")

    async def load(self) -> None:
        """Raises KeysError when the Secret is missing or its keys are invalid."""
        try:
            secret = await self.api.get(self.path)
        except ApiError as exc:
            raise KeysError(f"Secret {self.path.rsplit('/', 1)[1]}: {exc}") from None
        self._read_at = time.monotonic()
        raw = (secret.get("data") or {}).get(SECRET_KEY)
        if raw is None:
            raise KeysError(f"Secret {self.path.rsplit('/', 1)[1]} has no {SECRET_KEY}")
        keyset: KeySet = parse_keys(base64.b64decode(raw).decode(), f"Secret {SECRET_KEY}")
        self.keys = keyset.by_id()

    async def find(self, access_key: str) -> Key | None:
        key = self.keys.get(access_key)
        if key is None and time.monotonic() - self._read_at >= self.every:
            try:
                await self.load()
            except KeysError as exc:
                log.warning("SigV4 keys not reloaded: %s", exc)
            key = self.keys.get(access_key)
        return key
