"""Functions and versions: CreateFunction, the updates, DeleteFunction, PublishVersion and the
reads, over the object store."""

from __future__ import annotations

import copy
from typing import Any

from kubelambda.api.common import LATEST, is_digits
from kubelambda.serving.control.base import (
    Base,
    Ctx,
    code_size,
    conflict,
    json_tags,
    labels_for,
    new_object,
    object_name,
    stale,
    stamp,
)
from kubelambda.serving.control.shapes import configuration, tags_of, version_number
from kubelambda.serving.control.states import function_state
from kubelambda.serving.control.store import (
    CODE_SIZE,
    FUNCTION,
    ROLE,
    TAGS,
    VERSION,
    AlreadyExists,
    Obj,
)
from kubelambda.serving.control.translate import (
    Params,
    function_spec,
    require,
    sha256_base64,
    sha256_hex,
)
from kubelambda.serving.errors import bad_parameter
from kubelambda.serving.names import FunctionRef, function_arn

PAGE = 50


def page(items: list[Any], params: Params, key: str) -> dict[str, Any]:
    marker = str(params.get("Marker") or "")
    start = int(marker) if is_digits(marker) else 0
    size = min(int(params.get("MaxItems") or PAGE), 10000)
    body: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        body["NextMarker"] = str(start + size)
    return body


class FunctionOps(Base):
    async def config_of(self, ctx: Ctx, obj: Obj) -> dict[str, Any]:
        spec = obj["spec"].get("function") if obj.get("kind") == VERSION else obj["spec"]
        sizes = (
            await self.layer_sizes(ctx, obj["metadata"].get("namespace") or "default")
            if (spec or {}).get("layers")
            else {}
        )
        return configuration(obj, self.region, sizes)

    # Create, update, delete.

    async def create_function(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        require(params, "FunctionName", "Role", "Code")
        ref = self.ref({"FunctionName": params["FunctionName"]})
        if ref.qualifier:
            raise bad_parameter("FunctionName must not carry a qualifier in CreateFunction")
        if await ctx.objects.get(FUNCTION, ref.namespace, ref.name) is not None:
            raise conflict(f"Function already exist: {ref.name}")
        code, size = await self.store_code(params["Code"])
        layers = await self.layer_specs(ctx, ref.namespace, params.get("Layers"))
        spec = function_spec(params, code, layers, self.region, ref.namespace)
        annotations = {ROLE: str(params["Role"]), CODE_SIZE: str(size)}
        if params.get("Tags"):
            annotations[TAGS] = json_tags(params["Tags"])
        obj = stamp(new_object(FUNCTION, ref.namespace, ref.name, spec, annotations))
        try:
            created = await ctx.objects.create(FUNCTION, ref.namespace, obj)
        except AlreadyExists:
            raise conflict(f"Function already exist: {ref.name}") from None
        if params.get("Publish"):
            await self.backend.settled()
            return await self.config_of(ctx, await self._publish(ctx, ref, {}))
        return await self.config_of(ctx, created)

    async def update_function_code(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        ref = self.ref(params, qualifier=False)
        current = await self.function(ctx, ref)
        self._check_revision(current, params, "GetFunction")
        self._check_not_updating(current, ref)
        spec = copy.deepcopy(current["spec"])
        code, size = await self.store_code(params)
        if "image" in code and spec.get("packageType") != "Image":
            raise bad_parameter(
                "Please don't provide ImageUri when updating a function with packageType Zip."
            )
        if "image" not in code and spec.get("packageType") == "Image":
            raise bad_parameter(
                "Please provide ImageUri when updating a function with packageType Image."
            )
        if params.get("Architectures"):
            spec["architectures"] = params["Architectures"]
        spec = function_spec({}, code, spec.get("layers", []), self.region, ref.namespace, spec)
        updated = stamp({**current, "spec": spec}, **{CODE_SIZE: str(size)})
        if params.get("DryRun"):
            return await self.config_of(ctx, updated)
        written = await self.write(ctx, FUNCTION, ref.namespace, updated, "GetFunction")
        if params.get("Publish"):
            await self.backend.settled()
            return await self.config_of(ctx, await self._publish(ctx, ref, {}))
        return await self.config_of(ctx, written)

    async def update_function_configuration(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        ref = self.ref(params, qualifier=False)
        current = await self.function(ctx, ref)
        self._check_revision(current, params, "GetFunction")
        self._check_not_updating(current, ref)
        base = copy.deepcopy(current["spec"])
        layers = await self.layer_specs(ctx, ref.namespace, params.get("Layers"))
        spec = function_spec(params, base["code"], layers, self.region, ref.namespace, base)
        extra = {ROLE: str(params["Role"])} if params.get("Role") else {}
        written = await self.write(
            ctx, FUNCTION, ref.namespace, stamp({**current, "spec": spec}, **extra), "GetFunction"
        )
        return await self.config_of(ctx, written)

    async def delete_function(self, ctx: Ctx, params: Params) -> None:
        ref = self.ref(params)
        await self.function(ctx, ref)
        qualifier = ref.qualifier
        if qualifier == LATEST:
            raise bad_parameter("$LATEST version cannot be deleted without deleting the function.")
        aliases = await self.aliases(ctx, ref.namespace, ref.name)
        if qualifier is not None and not is_digits(qualifier):
            raise bad_parameter(
                "Deletion of aliases is not supported by DeleteFunction; use DeleteAlias"
            )
        if qualifier is not None:
            version = await self.version(ctx, ref, qualifier)
            users = [
                str(a["spec"].get("name") or a["metadata"]["name"])
                for a in aliases
                if qualifier == str(a["spec"]["functionVersion"])
                or qualifier
                in ((a["spec"].get("routingConfig") or {}).get("additionalVersionWeights") or {})
            ]
            if users:
                raise conflict(
                    f"Unable to delete version because the following aliases reference it: {users}"
                )
            await ctx.objects.delete(VERSION, ref.namespace, version["metadata"]["name"])
            return
        for alias in aliases:
            await ctx.objects.delete("Alias", ref.namespace, alias["metadata"]["name"])
        for version in await self.versions(ctx, ref.namespace, ref.name):
            await ctx.objects.delete(VERSION, ref.namespace, version["metadata"]["name"])
        await ctx.objects.delete(FUNCTION, ref.namespace, ref.name)

    # Versions.

    async def publish_version(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        ref = self.ref(params, qualifier=False)
        return await self.config_of(ctx, await self._publish(ctx, ref, params))

    async def _publish(self, ctx: Ctx, ref: FunctionRef, params: Params) -> Obj:
        function = await self.function(ctx, ref)
        self._check_revision(function, params, "GetFunction")
        state = function_state(function)
        if state["State"] == "Failed":
            raise conflict(f"The function {ref.name} is Failed: {state.get('StateReason', '')}")
        self._check_not_updating(function, ref)
        digest = function["spec"].get("code", {}).get("sha256") or (
            function.get("status") or {}
        ).get("codeSha256")
        if params.get("CodeSha256"):
            wanted = sha256_hex(str(params["CodeSha256"]))
            if wanted != digest:
                raise bad_parameter(
                    f"CodeSHA256 ({params['CodeSha256']}) is different from current CodeSHA256 "
                    f"in $LATEST ({sha256_base64(digest)}). Please try again with the "
                    "CodeSHA256 in $LATEST."
                )
        versions = await self.versions(ctx, ref.namespace, ref.name)
        if (
            versions
            and versions[-1]["spec"].get("function") == function["spec"]
            and not params.get("Description")
        ):
            return versions[-1]  # nothing changed since: Lambda answers the latest version
        taken = [int(version_number(v) or 0) for v in versions]
        latest = int((function.get("status") or {}).get("latestVersion") or 0)
        number = max([latest, *taken]) + 1
        annotations = {CODE_SIZE: str(code_size(function))}
        for _ in range(8):  # two publications at once: the store keeps names unique
            spec: Obj = {
                "functionName": ref.name,
                "version": number,
                "function": copy.deepcopy(function["spec"]),
            }
            if params.get("Description"):
                spec["description"] = params["Description"]
            if digest:
                spec["codeSha256"] = digest
            obj = stamp(
                new_object(
                    VERSION, ref.namespace, object_name(ref.name, str(number)), spec, annotations
                )
            )
            obj["metadata"]["labels"] = labels_for(ref.name)
            try:
                return await ctx.objects.create(VERSION, ref.namespace, obj)
            except AlreadyExists:
                number += 1
        raise conflict(f"could not publish a version of {ref.name}: too many at once; try again")

    # Reads.

    async def get_function(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        ref = self.ref(params)
        function = await self.function(ctx, ref)
        target = await self.qualified(ctx, ref)
        config = await self.config_of(ctx, target)
        if ref.qualifier and not is_digits(ref.qualifier) and ref.qualifier != LATEST:
            config["FunctionArn"] = function_arn(
                self.region, ref.namespace, ref.name, ref.qualifier
            )
        spec = target["spec"].get("function") if target.get("kind") == VERSION else target["spec"]
        code = (spec or {}).get("code") or {}
        if "image" in code:
            location: dict[str, Any] = {"RepositoryType": "ECR", "ImageUri": code["image"]}
        else:
            s3 = code.get("s3") or {}
            where = f"s3://{s3['bucket']}/{s3['key']}" if s3 else str(code.get("path") or "")
            location = {"RepositoryType": "S3", "Location": where}
        body: dict[str, Any] = {
            "Configuration": config,
            "Code": location,
            "Tags": tags_of(function),
        }
        asked = function["spec"].get("reservedConcurrency")
        reserved = self.settings.in_force(ref.namespace, ref.name, asked)
        if reserved is not None:
            body["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
        return body

    async def get_function_configuration(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        ref = self.ref(params)
        target = await self.qualified(ctx, ref)
        config = await self.config_of(ctx, target)
        return config

    async def list_functions(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        namespace = str(params.get("Namespace") or self.settings.default_namespace)
        functions = sorted(
            await ctx.objects.list(FUNCTION, namespace), key=lambda f: f["metadata"]["name"]
        )
        items = []
        everything = params.get("FunctionVersion") == "ALL"
        for function in functions:
            items.append(await self.config_of(ctx, function))
            if everything:
                for version in await self.versions(ctx, namespace, function["metadata"]["name"]):
                    items.append(await self.config_of(ctx, version))
        return page(items, params, "Functions")

    async def list_versions_by_function(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        ref = self.ref(params, qualifier=False)
        function = await self.function(ctx, ref)
        items = [await self.config_of(ctx, function)]
        for version in await self.versions(ctx, ref.namespace, ref.name):
            items.append(await self.config_of(ctx, version))
        return page(items, params, "Versions")

    # Helpers.

    def _check_revision(self, obj: Obj, params: Params, read_with: str) -> None:
        given = params.get("RevisionId")
        if given and given != str(obj["metadata"].get("resourceVersion")):
            raise stale(read_with)

    def _check_not_updating(self, obj: Obj, ref: FunctionRef) -> None:
        state = function_state(obj)
        if state["State"] == "Pending":
            raise conflict(
                "The operation cannot be performed at this time. The function is currently in "
                "the following state: Pending"
            )
        if state.get("LastUpdateStatus") == "InProgress":
            arn = function_arn(self.region, ref.namespace, ref.name)
            raise conflict(
                "The operation cannot be performed at this time. An update is in progress for "
                f"resource: {arn}"
            )
