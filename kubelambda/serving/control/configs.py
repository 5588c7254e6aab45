"""Aliases, concurrency (reserved and provisioned), event invoke configs, function URLs, tags
and the account's settings: each a field of a Function, Version or Alias object."""

from __future__ import annotations

import copy
from typing import Any

from kubelambda.api.common import LATEST
from kubelambda.serving.control.base import (
    TOTAL_CODE_LIMIT,
    UNZIPPED_LIMIT,
    ZIPPED_LIMIT,
    Base,
    Ctx,
    alias_name,
    code_size,
    conflict,
    json_tags,
    labels_for,
    new_object,
    object_name,
    stale,
    stamp,
)
from kubelambda.serving.control.shapes import (
    alias_configuration,
    annotations_of,
    event_invoke_config,
    last_modified,
    tags_of,
    url_configuration,
    version_number,
)
from kubelambda.serving.control.states import lambda_time
from kubelambda.serving.control.store import (
    ALIAS,
    FUNCTION,
    TAGS,
    VERSION,
    AlreadyExists,
    Obj,
    Stale,
)
from kubelambda.serving.control.translate import (
    Params,
    alias_spec,
    async_config,
    qualifier_kind,
    require,
    url_config,
)
from kubelambda.serving.errors import LambdaError, bad_parameter
from kubelambda.serving.names import FunctionRef, function_arn, parse_function_name

URL_CREATED = "kubelambda.dev/url-created"


class ConfigOps(Base):
    async def _write(self, ctx: Ctx, kind: str, namespace: str, obj: Obj, read_with: str) -> Obj:
        try:
            return await ctx.objects.replace(kind, namespace, obj)
        except Stale:
            raise stale(read_with) from None

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
        written = await self._write(
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

    # Reserved concurrency.

    async def put_function_concurrency(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        require(params, "FunctionName", "ReservedConcurrentExecutions")
        ref = self.ref(params, qualifier=False)
        current = await self.function(ctx, ref)
        wanted = int(params["ReservedConcurrentExecutions"])
        if wanted < 0:
            raise bad_parameter("ReservedConcurrentExecutions must be at least 0")
        others = sum(
            int(f["spec"].get("reservedConcurrency") or 0)
            for f in await ctx.objects.list(FUNCTION, ref.namespace)
            if f["metadata"]["name"] != ref.name
        )
        room = self.settings.concurrency_total - self.settings.unreserved_floor - others
        if wanted > room:
            raise bad_parameter(
                f"Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of "
                f"[{self.settings.unreserved_floor}]."
            )
        spec = {**current["spec"], "reservedConcurrency": wanted}
        await self._write(ctx, FUNCTION, ref.namespace, {**current, "spec": spec}, "GetFunction")
        return {"ReservedConcurrentExecutions": wanted}

    async def get_function_concurrency(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        ref = self.ref(params, qualifier=False)
        reserved = (await self.function(ctx, ref))["spec"].get("reservedConcurrency")
        return {} if reserved is None else {"ReservedConcurrentExecutions": reserved}

    async def delete_function_concurrency(self, ctx: Ctx, params: Params) -> None:
        ref = self.ref(params, qualifier=False)
        current = await self.function(ctx, ref)
        spec = {k: v for k, v in current["spec"].items() if k != "reservedConcurrency"}
        await self._write(ctx, FUNCTION, ref.namespace, {**current, "spec": spec}, "GetFunction")

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
        written = await self._write(
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
        await self._write(ctx, kind, ref.namespace, stamp({**obj, "spec": spec}), "GetAlias")

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

    # Event invoke configs ($LATEST: the Function's asyncConfig; an alias: the Alias's).

    async def _async_target(self, ctx: Ctx, params: Params) -> tuple[FunctionRef, str, Obj]:
        ref = self.ref(params)
        function = await self.function(ctx, ref)
        kind = qualifier_kind(ref.qualifier)
        if kind == "version":
            raise bad_parameter(
                "event invoke configs apply to $LATEST and aliases here: a published version's "
                "configuration is frozen (point an alias at it)"
            )
        if kind == "alias":
            return ref, ALIAS, await self.alias(ctx, ref, str(ref.qualifier))
        return ref, FUNCTION, function

    def _async_body(self, ref: FunctionRef, obj: Obj) -> dict[str, Any]:
        config = obj["spec"].get("asyncConfig")
        if config is None:
            arn = function_arn(self.region, ref.namespace, ref.name, ref.qualifier)
            raise LambdaError(
                "ResourceNotFoundException", f"The function {arn} doesn't have an EventInvokeConfig"
            )
        arn = function_arn(self.region, ref.namespace, ref.name, ref.qualifier or LATEST)
        return event_invoke_config(config, arn, last_modified(obj), self.region, ref.namespace)

    async def _put_async(self, ctx: Ctx, params: Params, merge: bool) -> dict[str, Any]:
        ref, kind, obj = await self._async_target(ctx, params)
        base = obj["spec"].get("asyncConfig") if merge else None
        config = async_config(params, self.region, ref.namespace, base)
        written = await self._write(
            ctx,
            kind,
            ref.namespace,
            stamp({**obj, "spec": {**obj["spec"], "asyncConfig": config}}),
            "GetFunction",
        )
        return self._async_body(ref, written)

    async def put_function_event_invoke_config(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        return await self._put_async(ctx, params, merge=False)

    async def update_function_event_invoke_config(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        return await self._put_async(ctx, params, merge=True)

    async def get_function_event_invoke_config(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        ref, _, obj = await self._async_target(ctx, params)
        return self._async_body(ref, obj)

    async def delete_function_event_invoke_config(self, ctx: Ctx, params: Params) -> None:
        ref, kind, obj = await self._async_target(ctx, params)
        self._async_body(ref, obj)  # 404 when there is none
        spec = {k: v for k, v in obj["spec"].items() if k != "asyncConfig"}
        await self._write(ctx, kind, ref.namespace, stamp({**obj, "spec": spec}), "GetFunction")

    async def list_function_event_invoke_configs(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        from kubelambda.serving.control.functions import page

        ref = self.ref(params, qualifier=False)
        function = await self.function(ctx, ref)
        items = []
        for obj, qualifier in [(function, None)] + [
            (a, alias_name(a)) for a in await self.aliases(ctx, ref.namespace, ref.name)
        ]:
            if obj["spec"].get("asyncConfig") is not None:
                qualified = FunctionRef(ref.namespace, ref.name, qualifier)
                items.append(self._async_body(qualified, obj))
        return page(items, params, "FunctionEventInvokeConfigs")

    # Function URLs (on $LATEST).

    async def _url_target(self, ctx: Ctx, params: Params) -> tuple[FunctionRef, Obj]:
        ref = self.ref(params)
        function = await self.function(ctx, ref)
        if qualifier_kind(ref.qualifier) != "latest":
            raise bad_parameter("function URLs are served on $LATEST only (no Qualifier)")
        return ref, function

    def _url_body(self, ref: FunctionRef, obj: Obj) -> dict[str, Any]:
        config = obj["spec"].get("functionUrl")
        if config is None:
            raise LambdaError(
                "ResourceNotFoundException", "The resource you requested does not exist."
            )
        created = annotations_of(obj).get(URL_CREATED) or last_modified(obj)
        url = self.settings.function_url(ref.namespace, ref.name)
        arn = function_arn(self.region, ref.namespace, ref.name)
        return url_configuration(config, arn, url, created, last_modified(obj))

    async def create_function_url_config(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        require(params, "FunctionName", "AuthType")
        ref, function = await self._url_target(ctx, params)
        if function["spec"].get("functionUrl") is not None:
            raise conflict(
                f"Failed to create function url config for [functionArn = "
                f"{function_arn(self.region, ref.namespace, ref.name)}]. Error message: "
                "FunctionUrlConfig exists for this Lambda function"
            )
        spec = {**function["spec"], "functionUrl": url_config(params)}
        obj = stamp({**function, "spec": spec}, **{URL_CREATED: lambda_time()})
        return self._url_body(
            ref, await self._write(ctx, FUNCTION, ref.namespace, obj, "GetFunction")
        )

    async def get_function_url_config(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        ref, function = await self._url_target(ctx, params)
        return self._url_body(ref, function)

    async def update_function_url_config(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        ref, function = await self._url_target(ctx, params)
        self._url_body(ref, function)
        spec = {
            **function["spec"],
            "functionUrl": url_config(params, function["spec"]["functionUrl"]),
        }
        written = await self._write(
            ctx, FUNCTION, ref.namespace, stamp({**function, "spec": spec}), "GetFunction"
        )
        return self._url_body(ref, written)

    async def delete_function_url_config(self, ctx: Ctx, params: Params) -> None:
        ref, function = await self._url_target(ctx, params)
        self._url_body(ref, function)
        spec = {k: v for k, v in function["spec"].items() if k != "functionUrl"}
        await self._write(
            ctx, FUNCTION, ref.namespace, stamp({**function, "spec": spec}), "GetFunction"
        )

    async def list_function_url_configs(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        from kubelambda.serving.control.functions import page

        ref, function = await self._url_target(ctx, {"FunctionName": params.get("FunctionName")})
        items = [self._url_body(ref, function)] if function["spec"].get("functionUrl") else []
        return page(items, params, "FunctionUrlConfigs")

    # Tags (on functions).

    async def _tagged(self, ctx: Ctx, params: Params) -> tuple[FunctionRef, Obj]:
        require(params, "Resource")
        ref = parse_function_name(str(params["Resource"]), None, self.settings.default_namespace)
        if ref.qualifier:
            raise bad_parameter("Tags apply to functions: use the unqualified function ARN")
        return ref, await self.function(ctx, ref)

    async def tag_resource(self, ctx: Ctx, params: Params) -> None:
        require(params, "Tags")
        ref, function = await self._tagged(ctx, params)
        tags = {**tags_of(function), **{str(k): str(v) for k, v in params["Tags"].items()}}
        if len(tags) > 50:
            raise bad_parameter("A function can have at most 50 tags")
        obj = stamp(function, **{TAGS: json_tags(tags)})
        await self._write(ctx, FUNCTION, ref.namespace, obj, "GetFunction")

    async def untag_resource(self, ctx: Ctx, params: Params) -> None:
        require(params, "TagKeys")
        ref, function = await self._tagged(ctx, params)
        drop = set(params["TagKeys"])
        tags = {k: v for k, v in tags_of(function).items() if k not in drop}
        await self._write(
            ctx, FUNCTION, ref.namespace, stamp(function, **{TAGS: json_tags(tags)}), "GetFunction"
        )

    async def list_tags(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        _, function = await self._tagged(ctx, params)
        return {"Tags": tags_of(function)}

    # The account (the namespace).

    async def get_account_settings(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        namespace = self.settings.default_namespace
        functions = await ctx.objects.list(FUNCTION, namespace)
        versions = await ctx.objects.list(VERSION, namespace)
        reserved = sum(int(f["spec"].get("reservedConcurrency") or 0) for f in functions)
        total = self.settings.concurrency_total
        return {
            "AccountLimit": {
                "TotalCodeSize": TOTAL_CODE_LIMIT,
                "CodeSizeUnzipped": UNZIPPED_LIMIT,
                "CodeSizeZipped": ZIPPED_LIMIT,
                "ConcurrentExecutions": total,
                "UnreservedConcurrentExecutions": max(
                    total - reserved, self.settings.unreserved_floor
                ),
            },
            "AccountUsage": {
                "TotalCodeSize": sum(code_size(o) for o in [*functions, *versions]),
                "FunctionCount": len(functions),
            },
        }
