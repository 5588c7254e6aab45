"""Aliases and provisioned concurrency: Alias objects, and the provisionedConcurrency of a
Version or an Alias."""

from __future__ import annotations

import copy
from typing import Any

from kubelambda.api.common import LATEST
from kubelambda.serving.control.base import (
    Base,
    Ctx,
    alias_name,
    conflict,
    labels_for,
    new_object,
    object_name,
    stale,
    stamp,
)
from kubelambda.serving.control.shapes import (
    alias_configuration,
    last_modified,
    version_number,
)
from kubelambda.serving.control.store import (
    ALIAS,
    VERSION,
    AlreadyExists,
    Obj,
)
from kubelambda.serving.control.translate import (
    Params,
    alias_spec,
    qualifier_kind,
    require,
)
from kubelambda.serving.errors import LambdaError, bad_parameter
from kubelambda.serving.names import FunctionRef, function_arn

URL_CREATED = "kubelambda.dev/url-created"


class AliasOps(Base):
    # Aliases.

    async def _check_versions(self, ctx: Ctx, ref: FunctionRef, spec: Obj) -> None:
        weights = (spec.get("routingConfig") or {}).get("additionalVersionWeights") or {}
        for number in [spec["functionVersion"], *weights]:
            if number != LATEST:
                await self.version(ctx, ref, str(number))

    async def create_alias(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        require(params, "FunctionName", "Name", "FunctionVersion")
        ref = self.ref(params, qualifier=False)
        await self.function(ctx, ref)
        name = str(params["Name"])
        spec = alias_spec(ref.name, name, params)
        await self._check_versions(ctx, ref, spec)
        if any(alias_name(a) == name for a in await self.aliases(ctx, ref.namespace, ref.name)):
            arn = function_arn(self.region, ref.namespace, ref.name, name)
            raise conflict(f"Alias already exists: {arn}")
        obj = stamp(new_object(ALIAS, ref.namespace, object_name(ref.name, name), spec, {}))
        obj["metadata"]["labels"] = labels_for(ref.name)
        try:
            created = await ctx.objects.create(ALIAS, ref.namespace, obj)
        except AlreadyExists:
            arn = function_arn(self.region, ref.namespace, ref.name, name)
            raise conflict(f"Alias already exists: {arn}") from None
        return alias_configuration(created, self.region)

    async def get_alias(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        ref = self.ref(params, qualifier=False)
        await self.function(ctx, ref)
        return alias_configuration(await self.alias(ctx, ref, str(params["Name"])), self.region)

    async def update_alias(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        ref = self.ref(params, qualifier=False)
        await self.function(ctx, ref)
        current = await self.alias(ctx, ref, str(params["Name"]))
        if params.get("RevisionId") and params["RevisionId"] != current["metadata"].get(
            "resourceVersion"
        ):
            raise stale("GetAlias")
        spec = alias_spec(ref.name, alias_name(current), params, copy.deepcopy(current["spec"]))
        await self._check_versions(ctx, ref, spec)
        written = await self.write(
            ctx, ALIAS, ref.namespace, stamp({**current, "spec": spec}), "GetAlias"
        )
        return alias_configuration(written, self.region)

    async def delete_alias(self, ctx: Ctx, params: Params) -> None:
        ref = self.ref(params, qualifier=False)
        await self.function(ctx, ref)
        current = await self.alias(ctx, ref, str(params["Name"]))
        await ctx.objects.delete(ALIAS, ref.namespace, current["metadata"]["name"])

    async def list_aliases(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        from kubelambda.serving.control.functions import page

        ref = self.ref(params, qualifier=False)
        await self.function(ctx, ref)
        found = await self.aliases(ctx, ref.namespace, ref.name)
        wanted = params.get("FunctionVersion")
        items = [
            alias_configuration(a, self.region)
            for a in found
            if wanted is None or str(a["spec"]["functionVersion"]) == str(wanted)
        ]
        return page(items, params, "Aliases")

    # Provisioned concurrency.

    async def _provisioned_target(self, ctx: Ctx, params: Params) -> tuple[FunctionRef, str, Obj]:
        require(params, "FunctionName", "Qualifier")
        ref = self.ref(params)
        await self.function(ctx, ref)
        kind = qualifier_kind(ref.qualifier)
        if kind == "latest":
            raise bad_parameter(
                "Provisioned Concurrency Configs cannot be applied to unpublished function "
                "versions."
            )
        qualifier = str(ref.qualifier)
        if kind == "version":
            return ref, VERSION, await self.version(ctx, ref, qualifier)
        return ref, ALIAS, await self.alias(ctx, ref, qualifier)

    def _provisioned_body(self, obj: Obj) -> dict[str, Any]:
        requested = int(obj["spec"].get("provisionedConcurrency") or 0)
        ready = int((obj.get("status") or {}).get("provisionedConcurrencyReady") or 0)
        ready = min(ready, requested)
        return {
            "RequestedProvisionedConcurrentExecutions": requested,
            "AvailableProvisionedConcurrentExecutions": ready,
            "AllocatedProvisionedConcurrentExecutions": ready,
            "Status": "READY" if ready >= requested else "IN_PROGRESS",
            "LastModified": last_modified(obj),
        }

    async def put_provisioned_concurrency_config(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        require(params, "ProvisionedConcurrentExecutions")
        ref, kind, obj = await self._provisioned_target(ctx, params)
        wanted = int(params["ProvisionedConcurrentExecutions"])
        if wanted < 1:
            raise bad_parameter("ProvisionedConcurrentExecutions must be at least 1")
        reserved = (await self.function(ctx, ref))["spec"].get("reservedConcurrency")
        if reserved is not None and wanted > int(reserved):
            raise bad_parameter(
                f"Requested Provisioned Concurrency ({wanted}) exceeds the function's reserved "
                f"concurrency ({reserved})"
            )
        spec = {**obj["spec"], "provisionedConcurrency": wanted}
        written = await self.write(
            ctx, kind, ref.namespace, stamp({**obj, "spec": spec}), "GetAlias"
        )
        return self._provisioned_body(written)

    async def get_provisioned_concurrency_config(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        ref, _, obj = await self._provisioned_target(ctx, params)
        if not obj["spec"].get("provisionedConcurrency"):
            raise LambdaError(
                "ProvisionedConcurrencyConfigNotFoundException",
                f"No Provisioned Concurrency Config found for this function: "
                f"{function_arn(self.region, ref.namespace, ref.name, ref.qualifier)}",
            )
        return self._provisioned_body(obj)

    async def delete_provisioned_concurrency_config(self, ctx: Ctx, params: Params) -> None:
        ref, kind, obj = await self._provisioned_target(ctx, params)
        spec = {**obj["spec"], "provisionedConcurrency": 0}
        await self.write(ctx, kind, ref.namespace, stamp({**obj, "spec": spec}), "GetAlias")

    async def list_provisioned_concurrency_configs(
        self, ctx: Ctx, params: Params
    ) -> dict[str, Any]:
        from kubelambda.serving.control.functions import page

        ref = self.ref(params, qualifier=False)
        await self.function(ctx, ref)
        items = []
        found = [
            (version_number(v) or "", v) for v in await self.versions(ctx, ref.namespace, ref.name)
        ] + [(alias_name(a), a) for a in await self.aliases(ctx, ref.namespace, ref.name)]
        for qualifier, obj in found:
            if obj["spec"].get("provisionedConcurrency"):
                arn = function_arn(self.region, ref.namespace, ref.name, qualifier)
                items.append({"FunctionArn": arn, **self._provisioned_body(obj)})
        return page(items, params, "ProvisionedConcurrencyConfigs")
