"""The control service's shared parts: settings, the per-call context, store errors as Lambda
errors, and the lookups every operation family uses."""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubelambda.api.common import API_VERSION, LATEST, is_digits
from kubelambda.serving.control.shapes import version_number
from kubelambda.serving.control.states import lambda_time
from kubelambda.serving.control.store import (
    ALIAS,
    CODE_SIZE,
    FUNCTION,
    FUNCTION_LABEL,
    LAST_MODIFIED,
    VERSION,
    Caller,
    CodeStore,
    Obj,
    ObjectBackend,
    ObjectStore,
    Stale,
    StoreError,
)
from kubelambda.serving.control.translate import Params, code_members
from kubelambda.serving.errors import LambdaError, bad_parameter
from kubelambda.serving.names import FunctionRef, function_arn, parse_function_name

# Lambda's code quotas (bytes).
ZIPPED_LIMIT = 52_428_800  # direct upload
UNZIPPED_LIMIT = 262_144_000
TOTAL_CODE_LIMIT = 80_530_636_800


@dataclass(frozen=True)
class ControlSettings:
    region: str
    default_namespace: str = "default"
    concurrency_total: int = 1000  # the namespace pool admission enforces
    unreserved_floor: int = 100
    # (namespace, function) -> its function URL
    function_url: Callable[[str, str], str] = lambda ns, name: (
        f"http://{name}.{ns}.lambda-url.localhost/"
    )
    # (namespace, function) -> the reservation admission refused (it did not fit), if any: reads
    # report what is in force, as Lambda would have refused it
    refused_reservation: Callable[[str, str], int | None] = lambda ns, name: None

    def in_force(self, namespace: str, name: str, reserved: int | None) -> int | None:
        """The reservation a Function's spec asks for, as admission has it in force."""
        if reserved is not None and self.refused_reservation(namespace, name) == reserved:
            return None
        return reserved


@dataclass
class Ctx:
    """One call: the objects as its caller sees them."""

    objects: ObjectStore
    caller: Caller | None


def not_found(region: str, ref: FunctionRef, qualifier: str | None = None) -> LambdaError:
    arn = function_arn(region, ref.namespace, ref.name, qualifier)
    return LambdaError("ResourceNotFoundException", f"Function not found: {arn}")


def conflict(message: str) -> LambdaError:
    return LambdaError("ResourceConflictException", message)


def stale(what: str) -> LambdaError:
    return LambdaError(
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. "
        f"Call the {what} API to retrieve the latest Revision Id",
    )


def new_object(kind: str, namespace: str, name: str, spec: Obj, annotations: Obj) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": spec,
    }


def stamp(obj: Obj, **annotations: str) -> Obj:
    """`obj` with LastModified now and the given annotations."""
    meta = dict(obj.get("metadata") or {})
    found = dict(meta.get("annotations") or {})
    found[LAST_MODIFIED] = lambda_time()
    found.update(annotations)
    meta["annotations"] = found
    return {**obj, "metadata": meta}


class Base:
    def __init__(self, objects: ObjectBackend, code: CodeStore, settings: ControlSettings) -> None:
        self.backend = objects
        self.code = code
        self.settings = settings

    @property
    def region(self) -> str:
        return self.settings.region

    async def layer_specs(self, ctx: Ctx, namespace: str, arns: Any) -> list[Obj]:
        """Layers named by ARN -> the layer sources a Function spec holds (layers.py)."""
        raise NotImplementedError

    async def layer_sizes(self, ctx: Ctx, namespace: str) -> dict[str, int]:
        """Layer version ARN -> its code size (layers.py)."""
        raise NotImplementedError

    async def write(self, ctx: Ctx, kind: str, namespace: str, obj: Obj, read_with: str) -> Obj:
        """Replaces `obj` with its resourceVersion as the precondition; a stale one is Lambda's
        412, which tells the client which read to repeat."""
        try:
            return await ctx.objects.replace(kind, namespace, obj)
        except Stale:
            raise stale(read_with) from None

    # Names.

    def ref(self, params: Params, *, qualifier: bool = True) -> FunctionRef:
        raw = params.get("FunctionName")
        if not raw:
            raise bad_parameter("FunctionName is required")
        given = params.get("Qualifier") if qualifier else None
        if given == "":
            raise bad_parameter("Qualifier must not be empty")
        return parse_function_name(str(raw), given, self.settings.default_namespace)

    # Lookups.

    async def function(self, ctx: Ctx, ref: FunctionRef) -> Obj:
        found = await ctx.objects.get(FUNCTION, ref.namespace, ref.name)
        if found is None:
            raise not_found(self.region, ref)
        return found

    async def versions(self, ctx: Ctx, namespace: str, name: str) -> list[Obj]:
        found = [
            v
            for v in await ctx.objects.list(VERSION, namespace)
            if v["spec"].get("functionName") == name and version_number(v)
        ]
        return sorted(found, key=lambda v: int(version_number(v) or 0))

    async def version(self, ctx: Ctx, ref: FunctionRef, number: str) -> Obj:
        for found in await self.versions(ctx, ref.namespace, ref.name):
            if version_number(found) == number:
                return found
        raise not_found(self.region, ref, number)

    async def aliases(self, ctx: Ctx, namespace: str, name: str) -> list[Obj]:
        found = [
            a
            for a in await ctx.objects.list(ALIAS, namespace)
            if a["spec"].get("functionName") == name
        ]
        return sorted(found, key=alias_name)

    async def alias(self, ctx: Ctx, ref: FunctionRef, name: str) -> Obj:
        for found in await self.aliases(ctx, ref.namespace, ref.name):
            if alias_name(found) == name:
                return found
        arn = function_arn(self.region, ref.namespace, ref.name, name)
        raise LambdaError("ResourceNotFoundException", f"Alias not found: {arn}")

    async def qualified(self, ctx: Ctx, ref: FunctionRef) -> Obj:
        """The Function ($LATEST) or Version object a qualified name means (an alias: its
        primary version)."""
        function = await self.function(ctx, ref)
        qualifier = ref.effective_qualifier
        if qualifier == LATEST:
            return function
        if is_digits(qualifier):
            return await self.version(ctx, ref, qualifier)
        target = (await self.alias(ctx, ref, qualifier))["spec"]["functionVersion"]
        return function if target == LATEST else await self.version(ctx, ref, str(target))

    # Code.

    async def store_code(self, params: Params, *, prefix: str = "") -> tuple[Obj, int]:
        """The `code` of a request's ZipFile, S3Bucket/S3Key or ImageUri, and its size."""
        member = code_members({k.removeprefix(prefix): v for k, v in params.items()})
        if member == "ImageUri":
            return {"image": params[prefix + "ImageUri"]}, 0
        with tempfile.TemporaryDirectory(prefix="kubelambda-code-") as tmp:
            path = Path(tmp) / "code.zip"
            if member == "ZipFile":
                try:
                    path.write_bytes(base64.b64decode(params[prefix + "ZipFile"], validate=True))
                except (binascii.Error, ValueError):
                    raise bad_parameter("ZipFile is not valid base64") from None
                if path.stat().st_size > ZIPPED_LIMIT:
                    raise LambdaError(
                        "RequestTooLargeException",
                        f"Unzipped size must be smaller than {UNZIPPED_LIMIT} bytes; "
                        f"a direct upload must be smaller than {ZIPPED_LIMIT} bytes "
                        "(use S3Bucket/S3Key)",
                    )
            else:
                try:
                    await self.code.fetch_s3(
                        params[prefix + "S3Bucket"],
                        params[prefix + "S3Key"],
                        params.get(prefix + "S3ObjectVersion"),
                        path,
                    )
                except StoreError as exc:
                    raise bad_parameter(f"Error occurred while GetObject. {exc}") from None
            check_zip(path)
            stored = await self.code.put_file(path)
        return dict(stored.code), stored.size


def check_zip(path: Path) -> None:
    """Lambda refuses what it cannot unzip, and code over its unzipped quota."""
    try:
        with zipfile.ZipFile(path) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        raise bad_parameter(
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        ) from None
    if total > UNZIPPED_LIMIT:
        raise bad_parameter(
            f"Unzipped size must be smaller than {UNZIPPED_LIMIT} bytes (got {total})"
        )


def alias_name(obj: Obj) -> str:
    return str(obj["spec"].get("name") or obj["metadata"]["name"])


def object_name(*parts: str) -> str:
    """A Kubernetes object name for Lambda names that may hold capitals or underscores; a
    digest suffix keeps two names that differ only there apart."""
    import hashlib

    joined = "-".join(parts)
    clean = "".join(c if c.isalnum() else "-" for c in joined.lower()).strip("-")
    if clean == joined and len(clean) <= 200:
        return clean
    return f"{clean[:180]}-{hashlib.sha256(joined.encode()).hexdigest()[:8]}"


def labels_for(function: str) -> dict[str, str]:
    return {FUNCTION_LABEL: function}


def code_size(obj: Obj) -> int:
    meta = obj.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(CODE_SIZE)
    return int(raw or (obj.get("status") or {}).get("codeSize") or 0)


def json_tags(tags: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(tags.items())), separators=(",", ":"))
