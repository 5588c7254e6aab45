"""The HTTP face of the emulated apiserver: a kmock handler that serves `store.Store`.

kmock 0.8 gives us its aiohttp server, its request log (`emulator.requests`-style iteration) and
its reaction DSL, which tests can still use to inject faults, e.g.
``emulator['post /api/v1/namespaces/default/pods'] << 500``: user reactions are consulted first,
and only requests they do not answer reach the emulation below. kmock's own
`KubernetesEmulator`/`KubernetesScaffold` are not used; README.md says why.

Routing follows the real URL layout: ``/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]]`` and
``/apis/GROUP/VERSION/...``, with ``/api/v1/namespaces[/NAME[/status]]`` as the cluster-scoped
namespace resource, plus discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/G/V``), ``/version``
and health endpoints.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import enums, rendering

from tests.cluster import discovery, schema
from tests.cluster.resources import ResourceType
from tests.cluster.semantics import ApiError, JsonDict, Selector
from tests.cluster.store import Store

logger = logging.getLogger(__name__)
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True)
class Route:
    group: str
    version: str
    plural: str = ""
    namespace: str | None = None
    name: str = ""
    subresource: str = ""


def parse_path(path: str) -> Route | None:
    """Split a Kubernetes API path; None for a path outside /api and /apis."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    # namespaces/NS/PLURAL... is namespaced; namespaces/NS/status is the Namespace itself.
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    return Route(group, version, plural, namespace, name, "/".join(rest[2:]))


@attrs.define(kw_only=True)
class FaithfulEmulator(kmock.RawHandler):
    """kmock's handler serving the store; see the module docstring."""

    store: Store = attrs.field(factory=Store)
    # Unexpected exceptions inside the emulator (its bugs, not API errors); fixtures assert empty.
    internal_errors: list[BaseException] = attrs.field(factory=list)
    _closing: bool = attrs.field(default=False, init=False)

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw.read()
        try:
            request = self._parse(raw, body)
            self._requests.append(request)
            if self._payloads:  # the tests' own reactions (fault injection) answer first
                try:
                    return await kmock.RawHandler._handle(self, request)
                except NotImplementedError:
                    pass
            return await self._serve(raw, request)
        except ApiError as exc:
            return aiohttp.web.json_response(exc.status(), status=exc.code)
        except Exception as exc:
            self.internal_errors.append(exc)
            logger.exception("emulated apiserver failed on %s %s", raw.method, raw.path)
            error = ApiError(500, "InternalError", traceback.format_exc(limit=5))
            return aiohttp.web.json_response(error.status(), status=500)

    def _parse(self, raw: aiohttp.web.BaseRequest, body: bytes) -> rendering.Request:
        route = parse_path(raw.path)
        try:
            data = json.loads(body) if body else None
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"invalid JSON body: {exc}") from exc
        action = None
        if route is not None and route.plural:
            action = _action(raw.method, route, _go_bool(raw.query.get("watch", "")))
        return rendering.Request(
            method=raw.method,
            url=raw.url,
            params=dict(raw.query),
            headers=dict(raw.headers),
            cookies=dict(raw.cookies),
            body=body,
            text=body.decode(errors="replace"),
            data=data,
            action=action,
            resource=kmock.resource(route.group, route.version, route.plural) if route else None,
            namespace=route.namespace if route else None,
            name=(route.name or None) if route else None,
            subresource=(route.subresource or None) if route else None,
            raw_request=raw,
        )

    async def close_watches(self) -> None:
        """End every open watch stream, so that the server can shut down without waiting."""
        self._closing = True
        for watcher in list(self.store.watchers):
            watcher.queue.put_nowait(("", {}))

    # --- serving ------------------------------------------------------------------------------

    async def _serve(
        self, raw: aiohttp.web.BaseRequest, request: rendering.Request
    ) -> aiohttp.web.StreamResponse:
        path = raw.path.rstrip("/") or "/"
        route = parse_path(path)
        if route is None or not route.plural:
            if raw.method != "GET":
                raise ApiError(405, "MethodNotAllowed", f"{raw.method} is not allowed on {path}")
            types = list(self.store.types.values())
            return aiohttp.web.json_response(discovery.document(path, types, raw.host))
        rt = self.store.lookup(route.group, route.version, route.plural)
        if rt.namespaced != (route.namespace is not None) and (route.name or raw.method != "GET"):
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({path})"
            )
        ns = route.namespace if rt.namespaced else None
        query = raw.query
        dry_run = query.get("dryRun") == "All"
        fv = query.get("fieldValidation", "")
        data = request.data
        status = 200
        if request.action == enums.action.WATCH:
            return await self._watch(raw, rt, ns, route.name)
        table = rt.custom and discovery.wants_table(raw.headers.get("Accept", ""))
        if request.action == enums.action.LIST:
            listing = self._list(rt, ns, query)
            if table:
                listing = discovery.table(
                    rt, listing["items"], listing["metadata"]["resourceVersion"]
                )
            return aiohttp.web.json_response(listing)
        if request.action == enums.action.FETCH:
            result = self.store.get(rt, ns, route.name)
            if table:
                result = discovery.table(rt, [result], result["metadata"]["resourceVersion"])
        elif request.action == enums.action.CREATE and route.subresource == "binding":
            result, status = self.store.bind(ns or "", route.name, data or {}), 201
        elif request.action == enums.action.CREATE:
            _require_object(data)
            result, status = (
                self.store.create(rt, ns, data, dry_run=dry_run, field_validation=fv),
                201,
            )
        elif raw.method == "PUT":
            _require_object(data)
            result = self.store.update(
                rt,
                ns,
                route.name,
                data,
                subresource=route.subresource,
                dry_run=dry_run,
                field_validation=fv,
            )
        elif raw.method == "PATCH":
            content_type = raw.headers.get("Content-Type", "").split(";")[0].strip()
            result = self.store.patch(
                rt,
                ns,
                route.name,
                data,
                content_type,
                subresource=route.subresource,
                dry_run=dry_run,
                field_validation=fv,
            )
        elif raw.method == "DELETE" and route.name:
            result = self.store.delete(
                rt, ns, route.name, _delete_options(data, query), dry_run=dry_run
            )
        elif raw.method == "DELETE":
            selector = Selector.parse(
                query.get("labelSelector", ""), query.get("fieldSelector", ""), rt.kind
            )
            options = _delete_options(data, query)
            for obj in self.store.list(rt, ns, selector):
                meta = obj["metadata"]
                self.store.delete(rt, meta.get("namespace"), meta["name"], options, dry_run=dry_run)
            result = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        else:
            raise ApiError(405, "MethodNotAllowed", f"{raw.method} is not allowed on {path}")
        headers = {}
        writes = raw.method in ("POST", "PUT", "PATCH")
        if writes and rt.custom and fv not in ("Strict", "Ignore") and isinstance(data, dict):
            warnings = schema.pruned_field_warnings(rt, data)
            if warnings:
                headers["Warning"] = ", ".join(f"299 - {json.dumps(w)}" for w in warnings)
        return aiohttp.web.json_response(result, status=status, headers=headers)

    def _list(self, rt: ResourceType, ns: str | None, query: Any) -> JsonDict:
        selector = Selector.parse(
            query.get("labelSelector", ""), query.get("fieldSelector", ""), rt.kind
        )
        items = self.store.list(rt, ns, selector)
        # Paging by offset: `continue` is opaque to clients, so an offset is a valid token.
        offset = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0)
        page = items[offset : offset + limit] if limit else items[offset:]
        meta: JsonDict = {"resourceVersion": str(self.store.rv)}
        if limit and offset + limit < len(items):
            meta["continue"] = str(offset + limit)
            meta["remainingItemCount"] = len(items) - offset - limit
        return {
            "apiVersion": rt.api_version,
            "kind": f"{rt.kind}List",
            "metadata": meta,
            "items": page,
        }

    async def _watch(
        self, raw: aiohttp.web.BaseRequest, rt: ResourceType, ns: str | None, name: str
    ) -> aiohttp.web.StreamResponse:
        query = raw.query
        field_selector = query.get("fieldSelector", "")
        if name:  # a watch of one object is a watch with a name field selector
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={name}"]))
        selector = Selector.parse(query.get("labelSelector", ""), field_selector, rt.kind)
        initial = _go_bool(query.get("sendInitialEvents", ""))
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            watcher = self.store.watch(rt, ns, selector, query.get("resourceVersion"), initial)
        except ApiError as exc:
            if exc.code != 410:
                raise
            # A compacted resourceVersion is reported in the stream, as the apiserver does.
            await response.prepare(raw)
            await response.write(
                json.dumps({"type": "ERROR", "object": exc.status()}).encode() + b"\n"
            )
            return response
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        try:
            await response.prepare(raw)
            async with asyncio.timeout(timeout):
                while not self._closing:
                    kind, obj = await watcher.queue.get()
                    if not kind:
                        break
                    await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self.store.watchers.discard(watcher)
        return response


def _action(method: str, route: Route, watch: bool) -> enums.action | None:
    if method == "GET":
        return (
            enums.action.WATCH if watch else enums.action.FETCH if route.name else enums.action.LIST
        )
    if method == "POST":
        return enums.action.CREATE
    if method in ("PATCH", "PUT"):
        return enums.action.UPDATE
    if method == "DELETE":
        return enums.action.DELETE
    return None


def _go_bool(text: str) -> bool:
    """Query flags parse as Go's strconv.ParseBool does (the python client sends `True`)."""
    return text in ("1", "t", "T", "true", "TRUE", "True")


def _require_object(data: Any) -> None:
    if not isinstance(data, dict):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object")


def _delete_options(data: Any, query: Any) -> JsonDict:
    options: JsonDict = dict(data) if isinstance(data, dict) else {}
    if "gracePeriodSeconds" in query:
        options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
    if "propagationPolicy" in query:
        options["propagationPolicy"] = query["propagationPolicy"]
    return options
