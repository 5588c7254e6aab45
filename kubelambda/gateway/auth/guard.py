"""The gateway's auth edge: authenticate every Lambda API call, then authorize it.

Modes (`--auth`): `sigv4` (keys from a file or a Secret), `kubernetes` (a bearer token, checked
with TokenReview), or both; the Authorization header says which one a request uses. The
decision comes from an `Authorizer`: the keys' own rules in dev mode, a SubjectAccessReview in
a cluster (then a SigV4 key's user and groups are what RBAC is asked about). Invocations need
verb `invoke`; the read calls need `get` or `invoke`, and only `get` shows a function's
environment variables; ListFunctions needs `list`; `kubelambda logs` needs `get`. The control API's
other operations (deploys) carry the caller as a `Caller` (`CALLER`): in a cluster the object
store impersonates it, so RBAC decides; in dev mode `control_api/routes.py` asks the key rules
(verbs `create`, `update`, `delete` by HTTP method). Probes, metrics
and function URLs with authType NONE are open; AWS_IAM URLs call `url_caller`; every other
request (an operation not served here, a path no operation has) must authenticate before it
gets its Lambda error. A caller is refused on its headers (no credentials, unknown key, skewed
clock) before any body is read; a SigV4 body is read by the gateway's one bounded reader.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any, Protocol

from aiohttp import web

from kubelambda.gateway.auth import sigv4
from kubelambda.gateway.auth.errors import access_denied, missing_token, unrecognized_client
from kubelambda.gateway.auth.keys import Key
from kubelambda.gateway.auth.model import Identity
from kubelambda.gateway.http import body_once, refuse_unread
from kubelambda.runtime.limits import ASYNC_PAYLOAD_LIMIT, SYNC_PAYLOAD_LIMIT
from kubelambda.serving.control.store import Caller
from kubelambda.serving.errors import LambdaError
from kubelambda.serving.names import cached_function_ref, function_arn, parse_function_name
from kubelambda.serving.urls import PATH_PREFIX

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MODES = ("sigv4", "kubernetes")
IDENTITY = "kubelambda.identity"
CALLER = "kubelambda.caller"  # the `Caller` the control API's object store acts as
MAY_READ = "kubelambda.may_read"  # the caller may see environment variables
FUNCTION_REF = "kubelambda.function_ref"  # the function a request names, parsed once

_FN = "/2015-03-31/functions/{name}"
# route -> (RBAC verb, Lambda action)
ROUTES: dict[str, tuple[str, str]] = {
    f"{_FN}/invocations": ("invoke", "lambda:InvokeFunction"),
    "/2021-11-15/functions/{name}/response-streaming-invocations": (
        "invoke",
        "lambda:InvokeFunction",
    ),
    "/2015-03-31/functions/": ("list", "lambda:ListFunctions"),
    "/2015-03-31/functions": ("list", "lambda:ListFunctions"),
    _FN: ("get", "lambda:GetFunction"),
    f"{_FN}/configuration": ("get", "lambda:GetFunctionConfiguration"),
    f"{_FN}/versions": ("get", "lambda:ListVersionsByFunction"),
    f"{_FN}/aliases": ("get", "lambda:ListAliases"),
    f"{_FN}/aliases/{{alias}}": ("get", "lambda:GetAlias"),
    "/2019-09-30/functions/{name}/concurrency": ("get", "lambda:GetFunctionConcurrency"),
    "/2021-10-31/functions/{name}/url": ("get", "lambda:GetFunctionUrlConfig"),
    # `kubelambda logs`: what a function printed may include its environment, so `get` only.
    "/kubelambda/v1/functions/{name}/logs": ("get", "kubelambda:GetFunctionLogs"),
}
GET_ONLY = frozenset({"/kubelambda/v1/functions/{name}/logs"})  # no `invoke` fallback


def _shape(path: str) -> str:
    """A route's path with its parameters unnamed: the control API names them as botocore's
    model does (`{FunctionName}`), the invoke routes `{name}`."""
    return re.sub(r"\{[^}]*\}", "{}", path)


_SHAPED = {_shape(path): (path, rule) for path, rule in ROUTES.items()}


@lru_cache(maxsize=512)  # keyed by a route's canonical path: as many as the router has
def _rule(canonical: str) -> tuple[str, tuple[str, str]] | None:
    """The ROUTES entry (path, (verb, action)) of a route, None for the others."""
    return _SHAPED.get(_shape(canonical))


# Open to anyone: probes and metrics (and function URLs, whose authType decides). Every other
# request, even to an operation this gateway does not serve, must authenticate first.
OPEN = frozenset({"/healthz", "/readyz", "/metrics"})


def parse_modes(value: str) -> frozenset[str]:
    """`none`, `sigv4`, `kubernetes` or `sigv4,kubernetes`; ValueError otherwise."""
    if value == "none":
        return frozenset()
    modes = frozenset(part.strip() for part in value.split(","))
    unknown = modes - set(MODES)
    if unknown or not modes:
        raise ValueError(f"--auth {value!r}: use none, sigv4, kubernetes or sigv4,kubernetes")
    return modes


class Authorizer(Protocol):
    async def allowed(
        self, identity: Identity, verb: str, namespace: str, function: str | None
    ) -> bool: ...


class KeyFinder(Protocol):
    async def find(self, access_key: str) -> Key | None: ...


class TokenChecker(Protocol):
    async def identity(self, token: str) -> Identity | None: ...


class StaticKeys:
    """Keys read once (dev mode's --keys FILE)."""

    def __init__(self, keys: dict[str, Key]) -> None:
        self.keys = keys

    async def find(self, access_key: str) -> Key | None:
        return self.keys.get(access_key)


class KeyRules:
    """Dev mode's authorizer: each key's `functions` globs and `verbs`."""

    def __init__(self, keys: KeyFinder) -> None:
        self.keys = keys

    async def allowed(
        self, identity: Identity, verb: str, namespace: str, function: str | None
    ) -> bool:
        key = await self.keys.find(identity.access_key) if identity.access_key else None
        return key is not None and key.allows(verb, namespace, function)


class Guard:
    def __init__(
        self,
        modes: frozenset[str],
        authorizer: Authorizer,
        *,
        keys: KeyFinder | None = None,
        tokens: TokenChecker | None = None,
        region: str,
        default_namespace: str,
        clock: Callable[[], float] = time.time,
        store_authorizes: bool = False,
    ) -> None:
        """`store_authorizes`: the control API's object store acts as the caller (a cluster's
        impersonation), so RBAC decides its operations; else `require_operation` does."""
        if "sigv4" in modes and keys is None:
            raise ValueError("sigv4 auth needs keys")
        if "kubernetes" in modes and tokens is None:
            raise ValueError("kubernetes auth needs a TokenReview client")
        self.modes = modes
        self.authorizer = authorizer
        self.keys = keys
        self.tokens = tokens
        self.region = region
        self.default_namespace = default_namespace
        self.clock = clock
        self.store_authorizes = store_authorizes

    async def authenticate(self, request: web.Request) -> Identity:
        """Who sent `request`. What the headers alone refuse is refused before the body is
        read; a SigV4 request's body is then read (bounded, `http.body_once`) to check it."""
        header = request.headers.get("Authorization", "")
        if header.startswith(sigv4.ALGORITHM) and self.keys is not None:
            return await self._sigv4(request, header)
        if header[:7].lower() == "bearer " and self.tokens is not None:
            found = await self.tokens.identity(header[7:].strip())
            if found is None:
                raise unrecognized_client()
            return found
        if header.startswith(sigv4.ALGORITHM) or header[:7].lower() == "bearer ":
            raise unrecognized_client()  # a scheme this gateway was not told to accept
        raise missing_token()

    async def _sigv4(self, request: web.Request, header: str) -> Identity:
        assert self.keys is not None
        claimed = sigv4.parse_authorization(header)
        key = await self.keys.find(claimed.access_key)
        secret = key.secret_access_key if key is not None else None
        timestamp = sigv4.check_claim(
            claimed, request.headers.get("X-Amz-Date"), secret, now=self.clock()
        )
        assert key is not None and secret is not None  # check_claim refuses an unknown key
        body = await body_once(request, body_limit(request))
        path, _, query = request.raw_path.partition("?")
        signed = sigv4.SignedRequest(request.method, path, query, request.headers, body)
        sigv4.check_signature(signed, claimed, secret, timestamp)
        return key.identity

    async def require(
        self,
        identity: Identity,
        verb: str,
        action: str,
        namespace: str,
        function: str | None,
        qualifier: str | None = None,
    ) -> None:
        if not await self.authorizer.allowed(identity, verb, namespace, function):
            if function is None:
                resource = f"arn:aws:lambda:{self.region}:*:function:{namespace}.*"
            else:
                resource = function_arn(self.region, namespace, function, qualifier)
            raise access_denied(identity.arn, action, resource)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else ""
        if canonical in OPEN or canonical.startswith(PATH_PREFIX):
            return await handler(request)  # probes, metrics; URLs check their own authType
        try:
            await self._admit(request, canonical)
        except LambdaError as exc:
            raise refuse_unread(request, exc) from None
        return await handler(request)

    async def _admit(self, request: web.Request, canonical: str) -> None:
        identity = await self.authenticate(request)
        request[IDENTITY] = identity
        found = _rule(canonical)
        verb = found[1][0] if found is not None else ""
        if found is None or request.method != ("POST" if verb == "invoke" else "GET"):
            # A control API operation (its store or routes authorize it), one this gateway
            # does not serve, or none at all: its own answer, to an authenticated caller.
            request[CALLER] = Caller(identity.user, identity.groups)
            return
        canonical, (verb, action) = found
        name = request.match_info.get("name") or request.match_info.get("FunctionName")
        if name is None:
            namespace = request.query.get("Namespace", self.default_namespace)
            await self.require(identity, verb, action, namespace, None)
            request[MAY_READ] = await self.authorizer.allowed(identity, "get", namespace, None)
            return
        ref = cached_function_ref(name, request.query.get("Qualifier"), self.default_namespace)
        request[FUNCTION_REF] = ref  # the handler's own (same name, qualifier and namespace)
        if verb == "get" and canonical not in GET_ONLY:
            may_read = await self.authorizer.allowed(identity, "get", ref.namespace, ref.name)
            request[MAY_READ] = may_read
            if not may_read:
                await self.require(
                    identity, "invoke", action, ref.namespace, ref.name, ref.qualifier
                )
        else:
            await self.require(identity, verb, action, ref.namespace, ref.name, ref.qualifier)

    async def require_operation(
        self, identity: Identity, operation: str, method: str, function: str | None
    ) -> None:
        """Authorize a control API operation with the verb its HTTP method implies."""
        ref = parse_function_name(function, None, self.default_namespace) if function else None
        verb = operation_verb(method, operation, ref is not None)
        namespace = ref.namespace if ref is not None else self.default_namespace
        name = ref.name if ref is not None else None
        await self.require(identity, verb, f"lambda:{operation}", namespace, name)

    async def url_caller(
        self, request: web.Request, namespace: str, function: str
    ) -> dict[str, Any]:
        identity = await self.authenticate(request)
        await self.require(identity, "invoke", "lambda:InvokeFunctionUrl", namespace, function)
        return identity.iam()


GUARD: web.AppKey[Guard] = web.AppKey("guard", Guard)
WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


def operation_verb(method: str, operation: str, one_function: bool) -> str:
    """The Kubernetes verb a control API operation needs: reads `get` (`list` when it names no
    function), writes by method (POST `create`, PUT/PATCH `update`, DELETE `delete`)."""
    if method in WRITE_VERBS:
        return WRITE_VERBS[method]
    return "get" if one_function or not operation.startswith("List") else "list"


def body_limit(request: web.Request) -> int:
    """The most a request may carry: Lambda's 256 KB for an Event invocation, else 6 MB."""
    if request.headers.get("X-Amz-Invocation-Type") == "Event":
        return ASYNC_PAYLOAD_LIMIT
    return SYNC_PAYLOAD_LIMIT


def may_read(request: web.Request) -> bool:
    """Whether this request's caller may see environment variables (True without auth)."""
    return bool(request.get(MAY_READ, True))
