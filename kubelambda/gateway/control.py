"""The read-only control calls tooling needs, shaped as botocore's Lambda model expects.

GetFunction, GetFunctionConfiguration, ListFunctions, ListVersionsByFunction, ListAliases,
GetAlias, GetFunctionConcurrency and GetFunctionUrlConfig. Mutating calls are not offered:
resources are changed with manifests (`kubectl apply`, or files in dev mode).
"""

from __future__ import annotations

import time
from typing import Any

from kubelambda.api.common import LATEST, is_digits
from kubelambda.api.function import FunctionUrlConfig
from kubelambda.serving.catalog import AliasRoute, Catalog, FunctionEntry, FunctionVersion
from kubelambda.serving.errors import LambdaError
from kubelambda.serving.names import ACCOUNT, FunctionRef, function_arn
from kubelambda.serving.urls import UrlDomain

PAGE = 50


def configuration(version: FunctionVersion, region: str) -> dict[str, Any]:
    spec = version.spec
    arn = function_arn(region, version.namespace, version.function)
    config: dict[str, Any] = {
        "FunctionName": version.function,
        "FunctionArn": arn if version.version == LATEST else f"{arn}:{version.version}",
        "Handler": spec.handler,
        "CodeSize": 0,
        "Description": version.description or "",
        "Timeout": spec.timeout,
        "MemorySize": spec.memory_size,
        "CodeSha256": version.code_sha256 or "",
        "Version": version.version,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": spec.package_type,
        "Architectures": list(spec.architectures),
        "EphemeralStorage": {"Size": spec.ephemeral_storage},
        "RevisionId": version.revision,
        "Role": f"arn:aws:iam::{ACCOUNT}:role/{spec.role or 'default'}",
    }
    if spec.runtime:
        config["Runtime"] = spec.runtime
    if spec.environment and spec.environment.variables:
        config["Environment"] = {"Variables": dict(spec.environment.variables)}
    if spec.layers:
        config["Layers"] = [
            {"Arn": f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{layer.name or i}:1", "CodeSize": 0}
            for i, layer in enumerate(spec.layers)
        ]
    if spec.logging_config:
        config["LoggingConfig"] = {
            "LogFormat": spec.logging_config.log_format,
            "LogGroup": spec.logging_config.log_group or f"/aws/lambda/{version.function}",
        }
    return config


def _version_of(entry: FunctionEntry, ref: FunctionRef, region: str) -> FunctionVersion:
    qualifier = ref.effective_qualifier
    if qualifier == LATEST:
        return entry.latest
    if qualifier in entry.versions:
        return entry.versions[qualifier]
    alias = entry.aliases.get(qualifier)
    if alias is not None:
        target = entry.latest if alias.function_version == LATEST else None
        return target or entry.versions[alias.function_version]
    raise LambdaError(
        "ResourceNotFoundException",
        f"Function not found: {function_arn(region, ref.namespace, ref.name, qualifier)}",
    )


def get_function_configuration(catalog: Catalog, ref: FunctionRef, region: str) -> dict[str, Any]:
    entry = catalog.entry(ref.namespace, ref.name)
    return configuration(_version_of(entry, ref, region), region)


def get_function(
    catalog: Catalog, ref: FunctionRef, region: str, reserved: int | None
) -> dict[str, Any]:
    """`reserved`: the reservation admission has in force (not what the manifest asks for)."""
    entry = catalog.entry(ref.namespace, ref.name)
    version = _version_of(entry, ref, region)
    body: dict[str, Any] = {
        "Configuration": configuration(version, region),
        "Code": {"RepositoryType": "S3", "Location": ""},
        "Tags": {},
    }
    if reserved is not None:
        body["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
    return body


def _page(
    items: list[dict[str, Any]], marker: str | None, max_items: str | None, key: str
) -> dict[str, Any]:
    start = int(marker) if marker and is_digits(marker) else 0
    size = min(int(max_items), 10000) if max_items and is_digits(max_items) else PAGE
    page = items[start : start + size]
    body: dict[str, Any] = {key: page}
    if start + size < len(items):
        body["NextMarker"] = str(start + size)
    return body


def list_functions(
    catalog: Catalog, namespace: str, region: str, marker: str | None, max_items: str | None
) -> dict[str, Any]:
    items = [configuration(e.latest, region) for e in catalog.in_namespace(namespace)]
    return _page(items, marker, max_items, "Functions")


def list_versions(
    catalog: Catalog, ref: FunctionRef, region: str, marker: str | None, max_items: str | None
) -> dict[str, Any]:
    entry = catalog.entry(ref.namespace, ref.name)
    ordered = [entry.latest] + [entry.versions[k] for k in sorted(entry.versions, key=int)]
    return _page([configuration(v, region) for v in ordered], marker, max_items, "Versions")


def alias_body(entry: FunctionEntry, alias: AliasRoute, region: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "AliasArn": function_arn(region, entry.namespace, entry.name, alias.name),
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description or "",
        "RevisionId": f"{alias.function_version}-{sorted(alias.weights.items())}",
    }
    if alias.weights:
        body["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.weights)}
    return body


def list_aliases(
    catalog: Catalog, ref: FunctionRef, region: str, marker: str | None, max_items: str | None
) -> dict[str, Any]:
    entry = catalog.entry(ref.namespace, ref.name)
    items = [alias_body(entry, entry.aliases[n], region) for n in sorted(entry.aliases)]
    return _page(items, marker, max_items, "Aliases")


def get_alias(catalog: Catalog, ref: FunctionRef, name: str, region: str) -> dict[str, Any]:
    entry = catalog.entry(ref.namespace, ref.name)
    alias = entry.aliases.get(name)
    if alias is None:
        raise LambdaError(
            "ResourceNotFoundException",
            f"Alias not found: {function_arn(region, ref.namespace, ref.name, name)}",
        )
    return alias_body(entry, alias, region)


def url_config_body(
    entry: FunctionEntry,
    config: FunctionUrlConfig,
    region: str,
    domain: UrlDomain,
    served_at: float,
) -> dict[str, Any]:
    arn = function_arn(region, entry.namespace, entry.name, config.qualifier)
    # Lambda's time format; the catalog's time stands for both (no creation time is kept).
    modified = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime(served_at))
    body: dict[str, Any] = {
        "FunctionUrl": domain.url(entry.namespace, entry.name),
        "FunctionArn": arn,
        "AuthType": config.auth_type,
        "InvokeMode": config.invoke_mode,
        "CreationTime": modified,
        "LastModifiedTime": modified,
    }
    if config.cors is not None:
        cors = config.cors
        shaped: dict[str, Any] = {
            "AllowHeaders": cors.allow_headers,
            "AllowMethods": cors.allow_methods,
            "AllowOrigins": cors.allow_origins,
            "ExposeHeaders": cors.expose_headers,
        }
        if cors.allow_credentials is not None:
            shaped["AllowCredentials"] = cors.allow_credentials
        if cors.max_age is not None:
            shaped["MaxAge"] = cors.max_age
        body["Cors"] = shaped
    return body


def get_function_url_config(
    catalog: Catalog, ref: FunctionRef, region: str, domain: UrlDomain
) -> dict[str, Any]:
    entry = catalog.entry(ref.namespace, ref.name)
    config = entry.latest.spec.function_url
    if config is None or (config.qualifier or None) != (ref.qualifier or None):
        raise LambdaError(
            "ResourceNotFoundException",
            "The resource you requested does not exist. (no function URL for "
            f"{function_arn(region, ref.namespace, ref.name, ref.qualifier)})",
        )
    return url_config_body(entry, config, region, domain, catalog.served_at)


def get_function_concurrency(
    catalog: Catalog, ref: FunctionRef, reserved: int | None
) -> dict[str, Any]:
    """What admission has in force: a reservation that does not fit is reported as none, as
    Lambda would have refused it (the gateway's log and status name it)."""
    catalog.entry(ref.namespace, ref.name)  # 404 for an unknown function
    return {} if reserved is None else {"ReservedConcurrentExecutions": reserved}
