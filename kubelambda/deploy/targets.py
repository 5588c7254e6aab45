"""Where `kubelambda deploy` ships to.

- `ClusterTarget`: zips go to the code store; manifests are applied to the API server with
  `code.s3` + `sha256` in place of `code.path` (created, or replaced with the resourceVersion
  read; a Version that exists is left alone: it is immutable).
- `GatewayTarget`: a running gateway (`kubelambda dev`, or a cluster's) through the Lambda
  control API with boto3: CreateFunction or UpdateFunctionCode/-Configuration with the zip,
  PublishVersion, Create/UpdateAlias, Put/DeleteFunctionConcurrency.
"""

from __future__ import annotations

import copy
from typing import Any

from kubelambda.deploy.package import Package
from kubelambda.deploy.publish import Call, boto_call
from kubelambda.kube.client import KubeApi
from kubelambda.kube.objects import KubeObjects, KubeObjectStore
from kubelambda.serving.control.base import ControlSettings
from kubelambda.serving.control.service import ControlService
from kubelambda.serving.control.store import CodeStore, StoreError
from kubelambda.serving.control.translate import sha256_base64
from kubelambda.serving.errors import LambdaError
from kubelambda.serving.names import ACCOUNT

Doc = dict[str, Any]


class DeployError(Exception):
    """A manifest could not be deployed; the message says which and why."""


class ClusterTarget:
    def __init__(self, api: KubeApi, code: CodeStore, region: str, namespace: str) -> None:
        self.store = KubeObjectStore(api)
        self.code = code
        self.namespace = namespace
        service = ControlService(KubeObjects(api), code, ControlSettings(region, namespace))

        async def call(operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
            return await service.call(operation, params)

        self.call: Call = call

    async def upload(self, pkg: Package) -> tuple[dict[str, Any], str, int]:
        try:
            stored = await self.code.put_file(pkg.path)
        except StoreError as exc:
            raise DeployError(f"{pkg.source}: {exc}") from exc
        s3 = stored.code.get("s3") or {}
        where = f"s3://{s3.get('bucket')}/{s3.get('key')}" if s3 else str(stored.code.get("path"))
        return stored.code, where, stored.size

    async def apply(self, doc: Doc, zips: dict[str, bytes]) -> str:
        kind = str(doc["kind"])
        meta = doc.get("metadata") or {}
        namespace = meta.get("namespace") or self.namespace
        name = str(meta.get("name"))
        body = copy.deepcopy(doc)
        body.setdefault("metadata", {})["namespace"] = namespace
        try:
            current = await self.store.get(kind, namespace, name)
            if current is None:
                await self.store.create(kind, namespace, body)
                return "created"
            if kind == "Version":
                return "unchanged (a Version is immutable)"
            if current.get("spec") == body.get("spec"):
                return "unchanged"
            merged = {**current, "spec": body.get("spec")}
            merged["metadata"] = {
                **current["metadata"],
                "labels": {
                    **(current["metadata"].get("labels") or {}),
                    **(meta.get("labels") or {}),
                },
                "annotations": {
                    **(current["metadata"].get("annotations") or {}),
                    **(meta.get("annotations") or {}),
                },
            }
            await self.store.replace(kind, namespace, merged)
            return "updated"
        except StoreError as exc:
            raise DeployError(f"{kind}/{name}: {exc}") from exc


def lambda_params(spec: dict[str, Any]) -> dict[str, Any]:
    """A Function spec (manifest form) as CreateFunction/UpdateFunctionConfiguration members."""
    params: dict[str, Any] = {}
    simple = {
        "runtime": "Runtime",
        "handler": "Handler",
        "description": "Description",
        "timeout": "Timeout",
        "memorySize": "MemorySize",
    }
    for key, member in simple.items():
        if spec.get(key) is not None:
            params[member] = spec[key]
    if spec.get("environment"):
        params["Environment"] = {"Variables": dict(spec["environment"].get("variables") or {})}
    if spec.get("ephemeralStorage"):
        params["EphemeralStorage"] = {"Size": spec["ephemeralStorage"]}
    logging = spec.get("loggingConfig")
    if logging:
        names = {
            "logFormat": "LogFormat",
            "applicationLogLevel": "ApplicationLogLevel",
            "systemLogLevel": "SystemLogLevel",
            "logGroup": "LogGroup",
        }
        params["LoggingConfig"] = {names[k]: v for k, v in logging.items() if k in names}
    if spec.get("layers"):
        raise DeployError(
            "layers: deploying to a gateway takes layers by ARN (PublishLayerVersion)"
        )
    return params


class GatewayTarget:
    def __init__(self, client: Any) -> None:
        self.call = boto_call(client)
        self._latest: dict[str, tuple[dict[str, Any], bytes]] = {}  # what the manifest says

    async def upload(self, pkg: Package) -> tuple[dict[str, Any], str, int]:
        data = pkg.path.read_bytes()
        return {"zip": data}, "the gateway's code store", len(data)

    async def apply(self, doc: Doc, zips: dict[str, bytes]) -> str:
        kind = doc["kind"]
        name = str(doc["metadata"]["name"])
        spec = doc.get("spec") or {}
        try:
            if kind == "Function":
                outcome = await self._function(name, spec, zips.get("spec.code"))
                self._latest[name] = (spec, zips["spec.code"])
                return outcome
            if kind == "Version":
                return await self._version(spec, zips)
            if kind == "Alias":
                return await self._alias(name, spec)
        except LambdaError as exc:
            raise DeployError(f"{kind}/{name}: {exc.code}: {exc.message}") from exc
        return "skipped (event source mappings are manifests: use a cluster)"

    async def _function(self, name: str, spec: dict[str, Any], data: bytes | None) -> str:
        if data is None:
            raise DeployError(f"Function/{name}: a gateway takes code from path or inline")
        params = lambda_params(spec)
        try:
            current = await self.call("GetFunction", {"FunctionName": name})
        except LambdaError as exc:
            if exc.code != "ResourceNotFoundException":
                raise
            current = None
        if current is None:
            role = f"arn:aws:iam::{ACCOUNT}:role/{spec.get('role') or 'default'}"
            await self.call(
                "CreateFunction",
                {"FunctionName": name, "Role": role, "Code": {"ZipFile": data}, **params},
            )
            outcome = "created"
        else:
            outcome = "unchanged"
            import hashlib

            digest = sha256_base64(hashlib.sha256(data).hexdigest())
            if current["Configuration"].get("CodeSha256") != digest:
                await self.call("UpdateFunctionCode", {"FunctionName": name, "ZipFile": data})
                outcome = "updated"
            config = current["Configuration"]
            if any(config.get(k) != v for k, v in params.items()):
                await self._settle(name)
                await self.call("UpdateFunctionConfiguration", {"FunctionName": name, **params})
                outcome = "updated"
        await self._settle(name)
        if "reservedConcurrency" in spec and spec["reservedConcurrency"] is None:
            return outcome  # a snapshot being published: concurrency is the Function's
        reserved = spec.get("reservedConcurrency")
        if reserved is not None:
            await self.call(
                "PutFunctionConcurrency",
                {"FunctionName": name, "ReservedConcurrentExecutions": reserved},
            )
        elif current is not None and current.get("Concurrency"):
            await self.call("DeleteFunctionConcurrency", {"FunctionName": name})
        return outcome

    async def _settle(self, name: str) -> None:
        from kubelambda.deploy.publish import wait_active

        await wait_active(self.call, name, None, 120)

    async def _version(self, spec: dict[str, Any], zips: dict[str, bytes]) -> str:
        """PublishVersion publishes $LATEST: a Version with its own snapshot is published by
        setting $LATEST to the snapshot first, then back to what the Function manifest says."""
        function = str(spec["functionName"])
        listed = await self.call("ListVersionsByFunction", {"FunctionName": function})
        numbers = {v["Version"] for v in (listed or {}).get("Versions", [])}
        if spec.get("version") is not None and str(spec["version"]) in numbers:
            return "unchanged"
        snapshot = spec.get("function")
        if snapshot:
            data = zips.get("spec.function.code")
            if data is None and (snapshot.get("code") or {}).get("inline"):
                from kubelambda.deploy.package import zip_inline

                data = zip_inline(snapshot["code"]["inline"])
            await self._function(function, {**snapshot, "reservedConcurrency": None}, data)
        params: dict[str, Any] = {"FunctionName": function}
        if spec.get("description"):
            params["Description"] = spec["description"]
        published = await self.call("PublishVersion", params)
        number = str((published or {}).get("Version"))
        if snapshot and function in self._latest:
            latest, data = self._latest[function]
            await self._function(function, latest, data)
        if spec.get("version") is not None and str(spec["version"]) != number:
            return f"published as version {number} (the manifest says {spec['version']})"
        return f"published version {number}"

    async def _alias(self, name: str, spec: dict[str, Any]) -> str:
        function = str(spec["functionName"])
        alias = str(spec.get("name") or name)
        params: dict[str, Any] = {
            "FunctionName": function,
            "Name": alias,
            "FunctionVersion": str(spec["functionVersion"]),
            "RoutingConfig": {
                "AdditionalVersionWeights": dict(
                    (spec.get("routingConfig") or {}).get("additionalVersionWeights") or {}
                )
            },
        }
        if spec.get("description"):
            params["Description"] = spec["description"]
        try:
            await self.call("GetAlias", {"FunctionName": function, "Name": alias})
        except LambdaError as exc:
            if exc.code != "ResourceNotFoundException":
                raise
            await self.call("CreateAlias", params)
            return "created"
        await self.call("UpdateAlias", params)
        return "updated"
