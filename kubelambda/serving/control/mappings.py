"""Event source mappings: EventSourceMapping objects named by their UUID."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from kubelambda.serving.control.base import Base, Ctx, labels_for, new_object, stamp
from kubelambda.serving.control.shapes import mapping_configuration
from kubelambda.serving.control.store import MAPPING, Obj
from kubelambda.serving.control.translate import Params, mapping_spec, require
from kubelambda.serving.errors import LambdaError


class MappingOps(Base):
    def _target(self, params: Params) -> tuple[str, str]:
        """(namespace, NAME[:QUALIFIER]) of a mapping's FunctionName."""
        ref = self.ref(params, qualifier=False)
        return ref.namespace, f"{ref.name}:{ref.qualifier}" if ref.qualifier else ref.name

    async def _mapping(self, ctx: Ctx, uuid_: str) -> Obj:
        found = await ctx.objects.get(MAPPING, self.settings.default_namespace, uuid_)
        if found is None:
            raise LambdaError(
                "ResourceNotFoundException",
                f"The resource you requested does not exist. (Service: Lambda, UUID: {uuid_})",
            )
        return found

    async def create_event_source_mapping(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        require(params, "FunctionName")
        namespace, target = self._target(params)
        name, _, _ = target.partition(":")
        await self.function(
            ctx, self.ref({"FunctionName": params["FunctionName"]}, qualifier=False)
        )
        spec = mapping_spec(params, target, self.region, namespace)
        obj = stamp(new_object(MAPPING, namespace, str(uuid.uuid4()), spec, {}))
        obj["metadata"]["labels"] = labels_for(name)
        created = await ctx.objects.create(MAPPING, namespace, obj)
        body = mapping_configuration(created, self.region)
        body["State"] = "Creating"
        return body

    async def get_event_source_mapping(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        require(params, "UUID")
        return mapping_configuration(await self._mapping(ctx, str(params["UUID"])), self.region)

    async def update_event_source_mapping(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        require(params, "UUID")
        current = await self._mapping(ctx, str(params["UUID"]))
        namespace = current["metadata"].get("namespace") or self.settings.default_namespace
        target = str(current["spec"]["functionName"])
        if params.get("FunctionName"):
            namespace, target = self._target(params)
            await self.function(
                ctx, self.ref({"FunctionName": params["FunctionName"]}, qualifier=False)
            )
        spec = mapping_spec(params, target, self.region, namespace, copy.deepcopy(current["spec"]))
        obj = stamp({**current, "spec": spec})
        written = await self.write(ctx, MAPPING, namespace, obj, "GetEventSourceMapping")
        body = mapping_configuration(written, self.region)
        body["State"] = "Updating"
        return body

    async def delete_event_source_mapping(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        require(params, "UUID")
        current = await self._mapping(ctx, str(params["UUID"]))
        namespace = current["metadata"].get("namespace") or self.settings.default_namespace
        await ctx.objects.delete(MAPPING, namespace, current["metadata"]["name"])
        body = mapping_configuration(current, self.region)
        body["State"] = "Deleting"
        return body

    async def list_event_source_mappings(self, ctx: Ctx, params: Params) -> dict[str, Any]:
        from kubelambda.serving.control.functions import page

        namespace = self.settings.default_namespace
        wanted = None
        if params.get("FunctionName"):
            namespace, wanted = self._target(params)
        items = []
        for obj in sorted(
            await ctx.objects.list(MAPPING, namespace), key=lambda o: o["metadata"]["name"]
        ):
            if wanted is not None and obj["spec"]["functionName"] != wanted:
                continue
            body = mapping_configuration(obj, self.region)
            if (
                params.get("EventSourceArn")
                and body.get("EventSourceArn") != params["EventSourceArn"]
            ):
                continue
            items.append(body)
        return page(items, params, "EventSourceMappings")
