"""The process kubelet's API client: the node's own credentials, and the reads a kubelet makes.

Every request carries the node's client certificate, so the apiserver's Node authorizer and
NodeRestriction decide what the kubelet may do: read the ConfigMaps and Secrets of pods bound to
it, request ServiceAccount tokens bound to those pods (TokenRequest), write their status and
Events. The authorizer learns of a binding a moment after it happens, so reads and token
requests retry 403 and 404 for a while (`REFERENCE_WAIT`), as the kubelet's own do.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import ssl
import time
from typing import Any

import aiohttp

JsonDict = dict[str, Any]
REFERENCE_WAIT = 15.0  # seconds to wait for a referenced object to appear (or be authorized)


class NodeClient:
    def __init__(self, api_url: str, ssl_context: ssl.SSLContext, node_name: str) -> None:
        self.api_url = api_url
        self.node_name = node_name
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        """Create the session (on the loop that will use it)."""
        connector = aiohttp.TCPConnector(ssl=self._ssl, limit=32)
        self._session = aiohttp.ClientSession(connector=connector)

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "NodeClient.open() first"
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        async with self.session.request(
            method, self.api_url + path, data=data, headers=headers
        ) as response:
            text = await response.text()
            try:
                answer = json.loads(text) if text else {}
            except ValueError:
                answer = text
            return response.status, answer

    async def event(self, pod: JsonDict, kind: str, reason: str, message: str) -> None:
        """A core/v1 Event about the pod, from the kubelet (best effort, as the kubelet's are)."""
        meta = pod["metadata"]
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": kind,
            "reason": reason,
            "message": message,
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": "kubelet",
            "reportingInstance": self.node_name,
        }
        await self.call("POST", f"/api/v1/namespaces/{meta['namespace']}/events", event)

    async def fetch(
        self, kind: str, ns: str, name: str, optional: bool
    ) -> dict[str, str | bytes] | None:
        """A ConfigMap's or Secret's data (a ConfigMap's binaryData as bytes). The Node
        authorizer lets a node read only what its pods use, and learns a binding a moment after
        it happens: 403 and 404 are retried."""
        plural = "configmaps" if kind == "ConfigMap" else "secrets"
        deadline = time.monotonic() + (1.0 if optional else REFERENCE_WAIT)
        delay = 0.05
        while True:
            status, body = await self.call("GET", f"/api/v1/namespaces/{ns}/{plural}/{name}")
            if status == 200:
                data: dict[str, str | bytes] = dict(body.get("data") or {})
                if kind == "Secret":
                    data = {k: base64.b64decode(v).decode() for k, v in data.items()}
                else:
                    binary = body.get("binaryData") or {}
                    data |= {k: base64.b64decode(v) for k, v in binary.items()}
                return data
            if status not in (403, 404) or time.monotonic() > deadline:
                return None
            await asyncio.sleep(delay)  # backoff between retries of a real request
            delay = min(delay * 2, 1.0)

    async def token(self, pod: JsonDict, audience: str, seconds: int) -> str:
        """A ServiceAccount token from the TokenRequest API, bound to the pod."""
        meta = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [audience] if audience else [],
                "expirationSeconds": seconds,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        path = f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token"
        deadline = time.monotonic() + REFERENCE_WAIT
        delay = 0.05
        while True:
            status, body = await self.call("POST", path, request)
            if status == 201:
                return str(body["status"]["token"])
            if status not in (403, 404) or time.monotonic() > deadline:
                raise RuntimeError(f"TokenRequest for {meta['namespace']}/{account}: {status}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
