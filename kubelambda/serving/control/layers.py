"""Layer versions: PublishLayerVersion and the reads, and turning layer ARNs into the layer
sources a Function spec holds. A layer version is a LayerVersion record whose code is in the
code store; deleting one keeps its record (marked deleted) so its number is never reused."""

from __future__ import annotations

import re
from typing import Any

from kubelambda.serving.control.base import Base, Ctx, new_object, object_name
from kubelambda.serving.control.shapes import layer_version, layer_version_arn
from kubelambda.serving.control.states import lambda_time
from kubelambda.serving.control.store import LAYER, AlreadyExists, Obj
from kubelambda.serving.control.translate import Params, require
from kubelambda.serving.errors import LambdaError, bad_parameter

_LAYER_NAME = re.compile(r"^[a-zA-Z0-9-_]{1,140}$")
_LAYER_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]*:\d{12}:layer:(?P<name>[a-zA-Z0-9-_.]+)"
    r"(?::(?P<version>\d+))?$"
)


class LayerOps(Base):
    def _layer_name(self, raw: str) -> tuple[str, str]:
        """(namespace, name) from a LayerName member: NAME, NAMESPACE.NAME or a layer ARN."""
        found = _LAYER_ARN.match(raw)
        name = found.group("name") if found else raw
        namespace, dot, short = name.rpartition(".")
        if not dot:
            namespace, short = self.settings.default_namespace, name
        if not _LAYER_NAME.match(short):
            raise bad_parameter(
                f"1 validation error detected: Value '{raw}' at 'layerName' failed to satisfy "
                "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+"
            )
        return namespace, short

    async def _records(self, ctx: Ctx, namespace: str, name: str | None = None) -> list[Obj]:
        found = [
            r
            for r in await ctx.objects.list(LAYER, namespace)
            if name is None or r["spec"]["layerName"] == name
        ]
        return sorted(found, key=lambda r: (r["spec"]["layerName"], int(r["spec"]["version"])))

    async def _record(self, ctx: Ctx, namespace: str, name: str, version: int) -> Obj:
        for record in await self._records(ctx, namespace, name):
            if int(record["spec"]["version"]) == version and not record["spec"].get("deleted"):
                return record
        arn = layer_version_arn(self.region, name, namespace, version)
        raise LambdaError(
            "ResourceNotFoundException", f"The resource you requested does not exist. ({arn})"
        )

    async def layer_specs(self, ctx: Ctx, namespace: str, arns: Any) -> list[Obj]:
        specs = []
        for arn in arns or []:
            found = _LAYER_ARN.match(str(arn))
            if not found or not found.group("version"):
                raise bad_parameter(f"Layer {arn}: a layer version ARN (…:layer:NAME:VERSION)")
            layer_ns, name = self._layer_name(str(arn))
            if layer_ns != namespace:
                raise bad_parameter(f"Layer {arn} belongs to another namespace")
            try:
                record = await self._record(ctx, layer_ns, name, int(found.group("version")))
            except LambdaError:
                raise bad_parameter(f"Layer version {arn} does not exist.") from None
            specs.append(
                {
                    "name": layer_version_arn(
                        self.region, name, layer_ns, record["spec"]["version"]
                    ),
                    **record["spec"]["code"],
                }
            )
        return specs

    async def layer_sizes(self, ctx: Ctx, namespace: str) -> dict[str, int]:
        return {
            layer_version_arn(
                self.region, r["spec"]["layerName"], namespace, r["spec"]["version"]
            ): int(r["spec"]["size"])
            for r in await self._records(ctx, namespace)
        }

    async def publish_layer_version(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        require(params, "LayerName", "Content")
        namespace, name = self._layer_name(str(params["LayerName"]))
        code, size = await self.store_code(params["Content"])
        if "image" in code:
            raise bad_parameter("a layer's Content is a ZipFile or S3Bucket/S3Key")
        for _ in range(8):
            records = await self._records(ctx, namespace, name)
            number = max([int(r["spec"]["version"]) for r in records], default=0) + 1
            spec: Obj = {
                "layerName": name,
                "version": number,
                "code": code,
                "sha256": code.get("sha256"),
                "size": size,
                "description": params.get("Description") or "",
                "compatibleRuntimes": params.get("CompatibleRuntimes") or [],
                "compatibleArchitectures": params.get("CompatibleArchitectures") or [],
                "createdDate": lambda_time(),
                "location": _location(code),
            }
            if params.get("LicenseInfo"):
                spec["licenseInfo"] = params["LicenseInfo"]
            obj = new_object(LAYER, namespace, object_name("layer", name, str(number)), spec, {})
            try:
                return layer_version(await ctx.objects.create(LAYER, namespace, obj), self.region)
            except AlreadyExists:
                continue  # published at the same moment: take the next number
        raise LambdaError("ResourceConflictException", f"could not publish layer {name}; try again")

    async def get_layer_version(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        require(params, "LayerName", "VersionNumber")
        namespace, name = self._layer_name(str(params["LayerName"]))
        record = await self._record(ctx, namespace, name, int(params["VersionNumber"]))
        return layer_version(record, self.region)

    async def get_layer_version_by_arn(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        require(params, "Arn")
        found = _LAYER_ARN.match(str(params["Arn"]))
        if not found or not found.group("version"):
            raise bad_parameter(f"Arn {params['Arn']} is not a layer version ARN")
        namespace, name = self._layer_name(str(params["Arn"]))
        return layer_version(
            await self._record(ctx, namespace, name, int(found.group("version"))), self.region
        )

    async def delete_layer_version(self, ctx: Ctx, params: Params) -> None:
        require(params, "LayerName", "VersionNumber")
        namespace, name = self._layer_name(str(params["LayerName"]))
        try:
            record = await self._record(ctx, namespace, name, int(params["VersionNumber"]))
        except LambdaError:
            return  # Lambda answers 204 for a version that is already gone
        await ctx.objects.replace(
            LAYER, namespace, {**record, "spec": {**record["spec"], "deleted": True}}
        )

    def _list_item(self, record: Obj) -> dict[str, Any]:
        full = layer_version(record, self.region)
        keep = (
            "LayerVersionArn",
            "Version",
            "Description",
            "CreatedDate",
            "CompatibleRuntimes",
            "LicenseInfo",
            "CompatibleArchitectures",
        )
        return {k: full[k] for k in keep if k in full}

    def _matches(self, record: Obj, params: Params) -> bool:
        spec = record["spec"]
        if spec.get("deleted"):
            return False
        runtime = params.get("CompatibleRuntime")
        arch = params.get("CompatibleArchitecture")
        return (not runtime or runtime in spec.get("compatibleRuntimes", [])) and (
            not arch or arch in spec.get("compatibleArchitectures", [])
        )

    async def list_layer_versions(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        from kubelambda.serving.control.functions import page

        require(params, "LayerName")
        namespace, name = self._layer_name(str(params["LayerName"]))
        records = [r for r in await self._records(ctx, namespace, name) if self._matches(r, params)]
        items = [self._list_item(r) for r in reversed(records)]  # newest first, as Lambda
        return page(items, params, "LayerVersions")

    async def list_layers(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        from kubelambda.serving.control.functions import page

        namespace = self.settings.default_namespace
        latest: dict[str, Obj] = {}
        for record in await self._records(ctx, namespace):
            if self._matches(record, params):
                latest[record["spec"]["layerName"]] = record  # sorted: the last is the newest
        items = []
        for name, record in sorted(latest.items()):
            item = self._list_item(record)
            items.append(
                {
                    "LayerName": name,
                    "LayerArn": str(item["LayerVersionArn"]).rsplit(":", 1)[0],
                    "LatestMatchingVersion": item,
                }
            )
        return page(items, params, "Layers")


def _location(code: Obj) -> str:
    s3 = code.get("s3")
    if s3:
        return f"{s3.get('endpoint', '').rstrip('/')}/{s3['bucket']}/{s3['key']}"
    return str(code.get("path") or "")
