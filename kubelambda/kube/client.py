"""A small asyncio client for the Kubernetes API: requests, preconditioned patches, watches.

The operator's pool keeper and the gateway's cluster provider share it. Credentials come from
the `kubernetes` package's loaders (in-cluster ServiceAccount, else KUBECONFIG), read once;
a rotating in-cluster token is refreshed through the loader's hook before each request.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from multidict import CIMultiDict

JsonDict = dict[str, Any]
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """A non-2xx answer; `status` is the HTTP code (409: conflict, 404: not found, ...)."""

    def __init__(self, status: int, body: Any, what: str) -> None:
        message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"{what}: {status} {message}")
        self.status = status
        self.body = body


def group_path(group: str, version: str) -> str:
    return "/api/v1" if group in ("", "core") else f"/apis/{group}/{version}"


def collection(group: str, version: str, plural: str, namespace: str | None = None) -> str:
    """`/api/v1/namespaces/NS/pods`, or the all-namespaces form when `namespace` is None."""
    base = group_path(group, version)
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"


class KubeApi:
    def __init__(
        self,
        host: str,
        *,
        token: str | None = None,
        ssl_context: ssl.SSLContext | bool = True,
        configuration: Any = None,
    ) -> None:
        self.host = host.rstrip("/")
        self._token = token
        self._ssl = ssl_context
        self._configuration = configuration  # a kubernetes Configuration, for token refresh
        self._session: aiohttp.ClientSession | None = None
        self._impersonate: dict[str, str | list[str]] = {}
        self._owner = True  # whether close() closes the session
        self._watch_session: aiohttp.ClientSession | None = None

    def impersonating(self, user: str, groups: tuple[str, ...] = ()) -> KubeApi:
        """The same connection, acting as `user` (Impersonate-User/-Group): the API server's
        RBAC then decides for that user. Needs the `impersonate` verb for the client itself."""
        other = KubeApi(
            self.host, token=self._token, ssl_context=self._ssl, configuration=self._configuration
        )
        other._session = self._client()
        other._owner = False
        other._impersonate = {"Impersonate-User": user}
        if groups:
            other._impersonate["Impersonate-Group"] = list(groups)
        return other

    @classmethod
    def from_environment(cls) -> KubeApi:
        """In-cluster credentials when running in a pod, else the current KUBECONFIG context."""
        import kubernetes

        cfg = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=cfg)
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=cfg)
        context: ssl.SSLContext | bool = True
        if cfg.host.startswith("https"):
            context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
            if cfg.cert_file:
                context.load_cert_chain(cfg.cert_file, cfg.key_file)
            if not cfg.verify_ssl:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        return cls(cfg.host, ssl_context=context, configuration=cfg)

    def _auth(self) -> dict[str, str]:
        cfg = self._configuration
        if cfg is not None:
            if cfg.refresh_api_key_hook is not None:
                cfg.refresh_api_key_hook(cfg)
            value = cfg.get_api_key_with_prefix("authorization") or cfg.get_api_key_with_prefix(
                "BearerToken"
            )
            return {"Authorization": value} if value else {}
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=32)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._session

    def _watch_client(self) -> aiohttp.ClientSession:
        """Watches hold their connection for minutes: 4 kinds per served namespace would take
        every slot of the request pool (32) at 8 namespaces and starve claims and patches, so
        they get their own pool, unbounded (one connection per watch, a fixed number)."""
        if self._watch_session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=0)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
            self._watch_session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._watch_session

    async def close(self) -> None:
        if self._session is not None and self._owner:
            await self._session.close()
        if self._watch_session is not None:
            await self._watch_session.close()
        self._session = self._watch_session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        seconds: float = 30.0,
    ) -> JsonDict:
        headers = CIMultiDict({**self._auth(), "Accept": "application/json"})
        for name, value in self._impersonate.items():
            for one in [value] if isinstance(value, str) else value:
                headers.add(name, one)  # one Impersonate-Group header per group
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        async with self._client().request(
            method,
            self.host + path,
            params=params,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            text = await response.text()
            try:
                answer = json.loads(text) if text else {}
            except ValueError:
                answer = text
            if response.status >= 300:
                raise ApiError(response.status, answer, f"{method} {path}")
            return answer if isinstance(answer, dict) else {}

    async def get(self, path: str) -> JsonDict:
        return await self.request("GET", path)

    async def replace(self, path: str, body: JsonDict) -> JsonDict:
        """PUT: `metadata.resourceVersion` in the body is the precondition (409 when stale)."""
        return await self.request("PUT", path, body=body)

    async def list(self, path: str, label_selector: str | None = None) -> JsonDict:
        params = {"labelSelector": label_selector} if label_selector else None
        return await self.request("GET", path, params=params)

    async def create(self, path: str, body: JsonDict) -> JsonDict:
        return await self.request("POST", path, body=body)

    async def patch(self, path: str, body: Any, content_type: str = MERGE) -> JsonDict:
        """A merge patch by default; put `metadata.resourceVersion` in it for a precondition."""
        return await self.request("PATCH", path, body=body, content_type=content_type)

    async def delete(
        self, path: str, *, uid: str | None = None, resource_version: str | None = None
    ) -> JsonDict:
        """Delete; with a precondition it fails with 409 if the object changed meanwhile."""
        preconditions = {"uid": uid, "resourceVersion": resource_version}
        kept = {k: v for k, v in preconditions.items() if v}
        body = {"preconditions": kept} if kept else None
        return await self.request("DELETE", path, body=body)

    async def watch(
        self, path: str, resource_version: str, label_selector: str | None, server_seconds: int
    ) -> AsyncIterator[JsonDict]:
        """The events of one watch request, until the server ends it (after `server_seconds`)."""
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(server_seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        async with self._watch_client().get(
            self.host + path,
            params=params,
            headers=self._auth(),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=server_seconds + 30),
        ) as response:
            if response.status >= 300:
                raise ApiError(response.status, await response.text(), f"WATCH {path}")
            # Split lines ourselves: aiohttp's line reader refuses lines over 64 KiB.
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
