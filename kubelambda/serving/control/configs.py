"""Reserved concurrency, event invoke configs, function URLs, tags and the account's settings:
each a field of a Function or Alias object."""

from __future__ import annotations

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
    stamp,
)
from kubelambda.serving.control.shapes import (
    annotations_of,
    event_invoke_config,
    last_modified,
    tags_of,
    url_configuration,
)
from kubelambda.serving.control.states import lambda_time
from kubelambda.serving.control.store import (
    ALIAS,
    FUNCTION,
    TAGS,
    VERSION,
    Obj,
)
from kubelambda.serving.control.translate import (
    Params,
    async_config,
    qualifier_kind,
    require,
    url_config,
)
from kubelambda.serving.errors import LambdaError, bad_parameter
from kubelambda.serving.names import FunctionRef, function_arn, parse_function_name

URL_CREATED = "kubelambda.dev/url-created"


class ConfigOps(Base):
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
        await self.write(ctx, FUNCTION, ref.namespace, {**current, "spec": spec}, "GetFunction")
        return {"ReservedConcurrentExecutions": wanted}

    async def get_function_concurrency(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        ref = self.ref(params, qualifier=False)
        asked = (await self.function(ctx, ref))["spec"].get("reservedConcurrency")
        reserved = self.settings.in_force(ref.namespace, ref.name, asked)
        return {} if reserved is None else {"ReservedConcurrentExecutions": reserved}

    async def delete_function_concurrency(self, ctx: Ctx, params: Params) -> None:
        ref = self.ref(params, qualifier=False)
        current = await self.function(ctx, ref)
        spec = {k: v for k, v in current["spec"].items() if k != "reservedConcurrency"}
        await self.write(ctx, FUNCTION, ref.namespace, {**current, "spec": spec}, "GetFunction")

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
        written = await self.write(
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
        await self.write(ctx, kind, ref.namespace, stamp({**obj, "spec": spec}), "GetFunction")

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
            ref, await self.write(ctx, FUNCTION, ref.namespace, obj, "GetFunction")
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
        written = await self.write(
            ctx, FUNCTION, ref.namespace, stamp({**function, "spec": spec}), "GetFunction"
        )
        return self._url_body(ref, written)

    async def delete_function_url_config(self, ctx: Ctx, params: Params) -> None:
        ref, function = await self._url_target(ctx, params)
        self._url_body(ref, function)
        spec = {k: v for k, v in function["spec"].items() if k != "functionUrl"}
        await self.write(
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
        await self.write(ctx, FUNCTION, ref.namespace, obj, "GetFunction")

    async def untag_resource(self, ctx: Ctx, params: Params) -> None:
        require(params, "TagKeys")
        ref, function = await self._tagged(ctx, params)
        drop = set(params["TagKeys"])
        tags = {k: v for k, v in tags_of(function).items() if k not in drop}
        await self.write(
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
