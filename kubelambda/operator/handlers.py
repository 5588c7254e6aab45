"""The kopf handlers: thin wrappers that read, call a pure reconciler, and write what it says.

Functions, Versions and Aliases are reconciled on create, update and resume. Status is written
through the status subresource (merge patches); a Version's number is taken by bumping the
Function's `status.latestVersion` with a resourceVersion precondition, retried on 409. Waiting
(a Version before its Function is Active, an Alias before its versions exist) is a kopf
TemporaryError, so kopf retries it. Pods are the `PoolKeeper`'s (keeper.py), started here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from kubelambda.api.common import GROUP, VERSION
from kubelambda.kube.client import ApiError, KubeApi, collection
from kubelambda.kube.view import ClusterView
from kubelambda.operator import aliases, functions, publishing, versions
from kubelambda.operator.config import OperatorConfig
from kubelambda.operator.keeper import PoolKeeper
from kubelambda.operator.status import Event

log = logging.getLogger(__name__)
VERSION_ATTEMPTS = 8  # 409s tolerated while taking a version number


@dataclass
class Runtime:
    """What the handlers share, kept in kopf's memo."""

    config: OperatorConfig
    api: KubeApi | None = None
    view: ClusterView | None = None
    keeper: PoolKeeper | None = None
    may_act: Callable[[], bool] = lambda: True  # False: a leader whose Lease may have lapsed


def plain(value: Any) -> Any:
    """kopf's read-only body views as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _path(plural: str, namespace: str, name: str | None = None) -> str:
    group, version = ("", "v1") if plural == "configmaps" else (GROUP, VERSION)
    base = collection(group, version, plural, namespace)
    return f"{base}/{name}" if name else base


async def _get(api: KubeApi, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await api.get(_path(plural, namespace, name))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


async def _write_status(
    api: KubeApi, plural: str, doc: dict[str, Any], status: dict[str, Any]
) -> None:
    meta = doc["metadata"]
    path = _path(plural, meta["namespace"], meta["name"]) + "/status"
    await api.patch(path, {"status": status})


async def _own(api: KubeApi, plural: str, doc: dict[str, Any], function: Any) -> None:
    """Make the Function the object's owner, so it is garbage-collected with it."""
    if not isinstance(function, dict):
        return
    meta = doc["metadata"]
    uid = function["metadata"].get("uid")
    present = meta.get("ownerReferences") or []
    if any(ref.get("uid") == uid for ref in present):
        return
    owner = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Function",
        "name": function["metadata"]["name"],
        "uid": uid,
        "blockOwnerDeletion": False,
    }
    others = [ref for ref in present if ref.get("kind") != "Function"]
    path = _path(plural, meta["namespace"], meta["name"])
    await api.patch(path, {"metadata": {"ownerReferences": [*others, owner]}})


async def wake_aliases(runtime: Runtime, api: KubeApi, namespace: str, function: str) -> list[str]:
    """Aliases waiting for a version are settled as soon as one is published, here, rather
    than at their handler's next retry (kopf's delay does not end on a change). Returns the
    names of the aliases it settled."""
    settled: list[str] = []
    listing = await api.list(_path("aliases", namespace))
    for alias in listing.get("items", []):
        spec, status = alias.get("spec") or {}, alias.get("status") or {}
        if spec.get("functionName") != function or status.get("state") != "Pending":
            continue
        plan = await _plan_alias(runtime, api, alias)
        if plan.wait is None:
            await _write_status(api, "aliases", alias, plan.status)
            settled.append(alias["metadata"]["name"])
            log.info("alias %s settled on a version's publication", settled[-1])
    return settled


def _post(body: Any, events: list[Event]) -> None:
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])


def _runtime(memo: Any) -> tuple[Runtime, KubeApi]:
    runtime: Runtime = memo.runtime
    assert runtime.api is not None, "the startup handler creates the API client"
    return runtime, runtime.api


async def startup(memo: Any, settings: kopf.OperatorSettings, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    runtime.api = KubeApi.from_environment()
    runtime.view = ClusterView(runtime.api, runtime.config.namespaces)
    runtime.keeper = PoolKeeper(runtime.api, runtime.view, runtime.config, may_act=runtime.may_act)
    runtime.view.start()
    runtime.keeper.start()


async def cleanup(memo: Any, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    if runtime.keeper is not None:
        await runtime.keeper.stop()
    if runtime.view is not None:
        await runtime.view.stop()
    if runtime.api is not None:
        await runtime.api.close()


async def function_changed(body: Any, memo: Any, **_: Any) -> None:
    runtime, api = _runtime(memo)
    doc = plain(body)
    if not functions.needs_update(doc):
        return
    now = time.time()
    await _write_status(api, "functions", doc, functions.in_progress(doc, now))
    configmap = None
    source = (doc.get("spec") or {}).get("code") or {}
    if isinstance(source.get("configMap"), dict):
        name = str(source["configMap"].get("name", ""))
        configmap = await _get(api, "configmaps", doc["metadata"]["namespace"], name)
    meta = doc["metadata"]
    url = runtime.config.url_domain.url(meta["namespace"], meta["name"])
    outcome = functions.reconcile(doc, configmap, time.time(), url=url)
    if outcome.status.get("state") == "Active":
        role = (doc.get("spec") or {}).get("role")
        account = None
        if role:
            path = f"{collection('', 'v1', 'serviceaccounts', doc['metadata']['namespace'])}/{role}"
            try:
                account = await api.get(path)
            except ApiError as exc:
                if exc.status != 404:
                    raise
        listed = bool(role) and runtime.config.may_assume(doc["metadata"]["namespace"], str(role))
        why = functions.serving_refusal(doc, runtime.config.home, account, listed)
        if why is not None:
            outcome = functions.refused(doc, why, time.time())
    await _write_status(api, "functions", doc, outcome.status)
    _post(body, outcome.events)
    sha = outcome.status.get("codeSha256")
    if outcome.status.get("state") == "Active" and outcome.status.get("lastModified") and sha:
        await _auto_publish(api, doc, str(sha))


async def _auto_publish(api: KubeApi, doc: dict[str, Any], sha: str) -> None:
    """autoPublishAlias: publish this generation as a Version (its handler moves the alias)."""
    version = publishing.auto_version(doc, sha)
    if version is None:
        return
    try:
        await api.create(_path("versions", doc["metadata"]["namespace"]), version)
        name = version["metadata"]["name"]
        log.info("auto-publishing %s as Version %s", doc["metadata"]["name"], name)
    except ApiError as exc:
        if exc.status != 409:  # 409: this generation was published already
            raise


async def _move_alias(api: KubeApi, version: dict[str, Any], number: int, function: Any) -> None:
    """An auto-published Version is out: create its alias or move it forward to `number`."""
    found = publishing.alias_for(version, number, function if isinstance(function, dict) else None)
    if found is None:
        return
    name, manifest = found
    namespace = version["metadata"]["namespace"]
    current = await _get(api, "aliases", namespace, name)
    if current is None:
        await api.create(_path("aliases", namespace), manifest)
    elif publishing.moves_forward(current, number):
        patch = {"spec": {"functionVersion": str(number)}}
        await api.patch(_path("aliases", namespace, name), patch)
    else:
        return
    function_name = manifest["spec"]["functionName"]
    log.info("alias %s of %s now points at version %s", name, function_name, number)


async def _siblings(api: KubeApi, plural: str, doc: dict[str, Any]) -> list[dict[str, Any]]:
    meta = doc["metadata"]
    function = (doc.get("spec") or {}).get("functionName")
    listing = await api.list(_path(plural, meta["namespace"]))
    return [
        item
        for item in listing.get("items", [])
        if (item.get("spec") or {}).get("functionName") == function
        and item["metadata"]["name"] != meta["name"]
    ]


async def _wait(api: KubeApi, plural: str, doc: dict[str, Any], reason: str, retry: int) -> None:
    """Record why the object waits, then have kopf retry the handler (backing off to 30 s)."""
    status = doc.get("status") or {}
    if status.get("state") != "Pending" or status.get("stateReason") != reason:
        await _write_status(api, plural, doc, {"state": "Pending", "stateReason": reason})
    raise kopf.TemporaryError(reason, delay=min(1.0 + retry, 30.0))


async def version_changed(
    body: Any,
    memo: Any,
    reason: str,
    retry: int = 0,
    old: Any = None,
    new: Any = None,
    **_: Any,
) -> None:
    runtime, api = _runtime(memo)
    doc = plain(body)
    if reason == "update" and old is not None and new is not None:
        violations = versions.set_once_violations(
            plain(old).get("spec") or {}, plain(new).get("spec") or {}
        )
        if violations:
            message = "; ".join(violations)
            await _write_status(api, "versions", doc, {"state": "Failed", "stateReason": message})
            _post(body, [Event("Warning", "Failed", message)])
            return
    meta = doc["metadata"]
    for _attempt in range(VERSION_ATTEMPTS):
        name = (doc.get("spec") or {}).get("functionName", "")
        function = await _get(api, "functions", meta["namespace"], str(name))
        siblings = await _siblings(api, "versions", doc)
        snapshot = ((doc.get("spec") or {}).get("function") or {}).get("code") or {}
        configmap = None
        if isinstance(snapshot.get("configMap"), dict):
            cm_name = str(snapshot["configMap"].get("name", ""))
            configmap = await _get(api, "configmaps", meta["namespace"], cm_name)
        plan = versions.plan(
            doc,
            function,
            siblings,
            time.time(),
            region=runtime.config.region,
            snapshot_configmap=configmap,
        )
        if plan.wait is not None:
            await _wait(api, "versions", doc, plan.wait, retry)
        if plan.failed is not None:
            await _write_status(api, "versions", doc, plan.status)
            _post(body, plan.events)
            return
        if plan.bump_latest_to is not None and function is not None:
            # Take the number: fails with 409 if anyone wrote the Function since we read it.
            precondition = {"resourceVersion": function["metadata"]["resourceVersion"]}
            try:
                await api.patch(
                    _path("functions", meta["namespace"], str(name)) + "/status",
                    {"metadata": precondition, "status": {"latestVersion": plan.bump_latest_to}},
                )
            except ApiError as exc:
                if exc.status == 409:
                    continue
                raise
        generation = meta.get("generation")
        if plan.spec_patch:
            written = await api.patch(
                _path("versions", meta["namespace"], meta["name"]), {"spec": plan.spec_patch}
            )
            generation = written["metadata"].get("generation")
        await _write_status(api, "versions", doc, {**plan.status, "observedGeneration": generation})
        _post(body, plan.events)
        await _own(api, "versions", doc, function)
        if plan.status.get("state") == "Active":
            await _move_alias(api, doc, int(plan.status["version"]), function)
            await wake_aliases(runtime, api, meta["namespace"], str(name))
        return
    raise kopf.TemporaryError("the function's version counter kept changing; retrying", delay=1)


async def _plan_alias(runtime: Runtime, api: KubeApi, doc: dict[str, Any]) -> aliases.AliasPlan:
    meta = doc["metadata"]
    name = (doc.get("spec") or {}).get("functionName", "")
    function = await _get(api, "functions", meta["namespace"], str(name))
    all_versions = (await api.list(_path("versions", meta["namespace"]))).get("items", [])
    own = [v for v in all_versions if (v.get("spec") or {}).get("functionName") == name]
    await _own(api, "aliases", doc, function)
    return aliases.plan(
        doc,
        function,
        own,
        await _siblings(api, "aliases", doc),
        time.time(),
        region=runtime.config.region,
    )


async def alias_changed(body: Any, memo: Any, retry: int = 0, **_: Any) -> None:
    runtime, api = _runtime(memo)
    doc = plain(body)
    plan = await _plan_alias(runtime, api, doc)
    if plan.wait is not None:
        await _wait(api, "aliases", doc, plan.wait, retry)
    await _write_status(api, "aliases", doc, plan.status)
    _post(body, plan.events)


def register(registry: kopf.OperatorRegistry) -> None:
    """Attach every handler to `registry`."""
    kopf.on.login(registry=registry)(kopf.login_via_client)
    kopf.on.startup(registry=registry)(startup)
    kopf.on.cleanup(registry=registry)(cleanup)
    for plural, handler in (
        ("functions", function_changed),
        ("versions", version_changed),
        ("aliases", alias_changed),
    ):
        for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
            decorator(GROUP, VERSION, plural, registry=registry, backoff=1)(handler)
