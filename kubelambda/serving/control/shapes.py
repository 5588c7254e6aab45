"""Objects -> the output shapes of botocore's Lambda model (FunctionConfiguration,
AliasConfiguration, EventSourceMappingConfiguration, ...). Pure.

RevisionId is the object's resourceVersion, so a RevisionId precondition is the store's own
optimistic-concurrency check; CodeSha256 is base64, as Lambda's; CodeSize and LastModified are
what the code store and the writes recorded (or the operator's status for manifests).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubelambda.api.common import LATEST
from kubelambda.serving.control.states import function_state, lambda_time, version_state
from kubelambda.serving.control.store import (
    CODE_SIZE,
    LAST_MODIFIED,
    ROLE,
    TAGS,
    VERSION,
    Obj,
)
from kubelambda.serving.control.translate import destination_arn, sha256_base64
from kubelambda.serving.names import ACCOUNT, function_arn


def meta(obj: Obj) -> dict[str, Any]:
    found: dict[str, Any] = obj.get("metadata") or {}
    return found


def annotations_of(obj: Obj) -> dict[str, str]:
    found: dict[str, str] = meta(obj).get("annotations") or {}
    return found


def tags_of(obj: Obj) -> dict[str, str]:
    raw = annotations_of(obj).get(TAGS)
    return dict(json.loads(raw)) if raw else {}


def last_modified(obj: Obj) -> str:
    given = annotations_of(obj).get(LAST_MODIFIED)
    if given:
        return given
    stamp = (obj.get("status") or {}).get("lastModified") or meta(obj).get("creationTimestamp")
    if stamp:
        try:
            return lambda_time(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")))
        except ValueError:
            pass
    return lambda_time()


def version_number(obj: Obj) -> str | None:
    value = (obj.get("spec") or {}).get("version") or (obj.get("status") or {}).get("version")
    return str(value) if value else None


def function_name_of(obj: Obj) -> str:
    if obj.get("kind") == VERSION:
        return str(obj["spec"]["functionName"])
    return str(meta(obj)["name"])


def configuration(
    obj: Obj, region: str, layer_sizes: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """FunctionConfiguration of a Function ($LATEST) or a Version object."""
    namespace = meta(obj).get("namespace") or "default"
    name = function_name_of(obj)
    is_version = obj.get("kind") == VERSION
    spec: dict[str, Any] = (obj["spec"].get("function") or {}) if is_version else obj["spec"]
    number = version_number(obj) if is_version else None
    version = number or LATEST
    status = obj.get("status") or {}
    code = spec.get("code") or {}
    digest = code.get("sha256") or status.get("codeSha256")
    size = annotations_of(obj).get(CODE_SIZE) or status.get("codeSize") or 0
    arn = function_arn(region, namespace, name)
    config: dict[str, Any] = {
        "FunctionName": name,
        "FunctionArn": f"{arn}:{version}" if is_version else arn,
        "Role": annotations_of(obj).get(ROLE)
        or f"arn:aws:iam::{ACCOUNT}:role/{spec.get('role') or 'default'}",
        "CodeSize": int(size),
        "Description": spec.get("description") or "",
        "Timeout": spec.get("timeout", 3),
        "MemorySize": spec.get("memorySize", 128),
        "LastModified": last_modified(obj),
        "CodeSha256": sha256_base64(digest),
        "Version": version,
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": str(meta(obj).get("resourceVersion") or ""),
        "PackageType": spec.get("packageType", "Zip"),
        "Architectures": list(spec.get("architectures") or ["x86_64"]),
        "EphemeralStorage": {"Size": spec.get("ephemeralStorage", 512)},
        **(version_state(obj) if is_version else function_state(obj)),
    }
    if spec.get("runtime"):
        config["Runtime"] = spec["runtime"]
    if spec.get("handler"):
        config["Handler"] = spec["handler"]
    variables = (spec.get("environment") or {}).get("variables")
    if variables:
        config["Environment"] = {"Variables": dict(variables)}
    if spec.get("layers"):
        sizes = layer_sizes or {}
        config["Layers"] = [
            {
                "Arn": layer_arn(layer, region, i),
                "CodeSize": sizes.get(layer_arn(layer, region, i), 0),
            }
            for i, layer in enumerate(spec["layers"])
        ]
    image = spec.get("imageConfig")
    if image:
        names = {
            "entryPoint": "EntryPoint",
            "command": "Command",
            "workingDirectory": "WorkingDirectory",
        }
        config["ImageConfigResponse"] = {
            "ImageConfig": {names[k]: v for k, v in image.items() if k in names}
        }
    logging = spec.get("loggingConfig")
    config["LoggingConfig"] = {
        "LogFormat": (logging or {}).get("logFormat", "Text"),
        "LogGroup": (logging or {}).get("logGroup") or f"/aws/lambda/{name}",
    }
    for key, member in (
        ("applicationLogLevel", "ApplicationLogLevel"),
        ("systemLogLevel", "SystemLogLevel"),
    ):
        if (logging or {}).get(key):
            config["LoggingConfig"][member] = logging[key]  # type: ignore[index]
    dlq = spec.get("deadLetterConfig")
    if dlq:
        config["DeadLetterConfig"] = {"TargetArn": destination_arn(dlq, region, namespace)}
    return config


def layer_arn(layer: Mapping[str, Any], region: str, index: int) -> str:
    name = str(layer.get("name") or "")
    if name.startswith("arn:"):
        return name
    return f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{name or index}:1"


def alias_configuration(obj: Obj, region: str) -> dict[str, Any]:
    spec = obj["spec"]
    namespace = meta(obj).get("namespace") or "default"
    name = spec.get("name") or meta(obj)["name"]
    body: dict[str, Any] = {
        "AliasArn": function_arn(region, namespace, spec["functionName"], name),
        "Name": name,
        "FunctionVersion": spec["functionVersion"],
        "Description": spec.get("description") or "",
        "RevisionId": str(meta(obj).get("resourceVersion") or ""),
    }
    weights = (spec.get("routingConfig") or {}).get("additionalVersionWeights")
    if weights:
        body["RoutingConfig"] = {"AdditionalVersionWeights": dict(weights)}
    return body


def event_invoke_config(
    config: Mapping[str, Any], arn: str, modified: str, region: str, namespace: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "LastModified": modified,
        "FunctionArn": arn,
        "MaximumRetryAttempts": config.get("maximumRetryAttempts", 2),
        "MaximumEventAgeInSeconds": config.get("maximumEventAgeInSeconds", 21600),
    }
    destinations = config.get("destinations") or {}
    out: dict[str, Any] = {}
    for key, member in (("onSuccess", "OnSuccess"), ("onFailure", "OnFailure")):
        if destinations.get(key):
            out[member] = {"Destination": destination_arn(destinations[key], region, namespace)}
    body["DestinationConfig"] = out
    return body


def url_configuration(
    config: Mapping[str, Any], arn: str, url: str, created: str, modified: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "FunctionUrl": url,
        "FunctionArn": arn,
        "AuthType": config.get("authType", "AWS_IAM"),
        "CreationTime": created,
        "LastModifiedTime": modified,
        "InvokeMode": config.get("invokeMode", "BUFFERED"),
    }
    cors = config.get("cors")
    if cors:
        names = {
            "allowCredentials": "AllowCredentials",
            "allowHeaders": "AllowHeaders",
            "allowMethods": "AllowMethods",
            "allowOrigins": "AllowOrigins",
            "exposeHeaders": "ExposeHeaders",
            "maxAge": "MaxAge",
        }
        body["Cors"] = {names[k]: v for k, v in cors.items() if k in names}
    return body


def mapping_configuration(obj: Obj, region: str) -> dict[str, Any]:
    spec = obj["spec"]
    namespace = meta(obj).get("namespace") or "default"
    name, _, qualifier = str(spec["functionName"]).partition(":")
    source = spec.get("source") or {}
    enabled = spec.get("enabled", True)
    status = obj.get("status") or {}
    body: dict[str, Any] = {
        "UUID": meta(obj)["name"],
        "FunctionArn": function_arn(region, namespace, name, qualifier or None),
        "LastModified": int(
            datetime.fromisoformat(last_modified(obj).replace("+0000", "+00:00")).timestamp()
        ),
        "State": status.get("state") or ("Enabled" if enabled else "Disabled"),
        "StateTransitionReason": status.get("stateReason") or "USER_INITIATED",
        "BatchSize": spec.get("batchSize") or _default_batch(source),
    }
    if "sqs" in source:
        url = str(source["sqs"]["queueUrl"])
        parts = [p for p in url.split("/") if p]
        body["EventSourceArn"] = (
            f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}" if len(parts) >= 2 else url
        )
    if "kafka" in source:
        kafka = source["kafka"]
        body["SelfManagedEventSource"] = {
            "Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": kafka["bootstrapServers"]}
        }
        body["Topics"] = [kafka["topic"]]
        if kafka.get("consumerGroupId"):
            body["SelfManagedKafkaEventSourceConfig"] = {
                "ConsumerGroupId": kafka["consumerGroupId"]
            }
    for key, member in (
        ("maximumBatchingWindowInSeconds", "MaximumBatchingWindowInSeconds"),
        ("startingPosition", "StartingPosition"),
        ("bisectBatchOnFunctionError", "BisectBatchOnFunctionError"),
        ("maximumRetryAttempts", "MaximumRetryAttempts"),
        ("maximumRecordAgeInSeconds", "MaximumRecordAgeInSeconds"),
        ("functionResponseTypes", "FunctionResponseTypes"),
    ):
        if spec.get(key) is not None:
            body[member] = spec[key]
    filters = (spec.get("filterCriteria") or {}).get("filters")
    if filters:
        body["FilterCriteria"] = {"Filters": [{"Pattern": f["pattern"]} for f in filters]}
    if spec.get("scalingConfig"):
        body["ScalingConfig"] = {"MaximumConcurrency": spec["scalingConfig"]["maximumConcurrency"]}
    on_failure = (spec.get("destinationConfig") or {}).get("onFailure")
    if on_failure:
        body["DestinationConfig"] = {
            "OnFailure": {"Destination": destination_arn(on_failure, region, namespace)}
        }
    return body


def _default_batch(source: Mapping[str, Any]) -> int:
    from kubelambda.api.esm import SOURCE_LIMITS

    kind = next((k for k in SOURCE_LIMITS if k in source), "sqs")
    return SOURCE_LIMITS[kind].batch_default


def layer_version(record: Obj, region: str) -> dict[str, Any]:
    """GetLayerVersion/PublishLayerVersion's answer from a LayerVersion record."""
    spec = record["spec"]
    namespace = meta(record).get("namespace") or "default"
    arn = layer_version_arn(region, spec["layerName"], namespace, spec["version"])
    body: dict[str, Any] = {
        "Content": {
            "Location": spec.get("location", ""),
            "CodeSha256": sha256_base64(spec["sha256"]),
            "CodeSize": spec["size"],
        },
        "LayerArn": arn.rsplit(":", 1)[0],
        "LayerVersionArn": arn,
        "Description": spec.get("description") or "",
        "CreatedDate": spec["createdDate"],
        "Version": spec["version"],
        "CompatibleRuntimes": spec.get("compatibleRuntimes") or [],
        "CompatibleArchitectures": spec.get("compatibleArchitectures") or [],
    }
    if spec.get("licenseInfo"):
        body["LicenseInfo"] = spec["licenseInfo"]
    return body


def layer_version_arn(region: str, name: str, namespace: str, version: int) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{namespace}.{name}:{version}"
