"""Lambda API requests -> resource specs, and the ARNs Lambda speaks back. Pure.

Every request member that changes behaviour is carried into the Function (or Alias, Version,
EventSourceMapping) spec, then validated by the resource models, so the API refuses exactly
what a manifest would be refused for, naming the field. Members that would need something we
do not run (VPC, EFS, SnapStart, code signing) are refused when set, never silently dropped.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ValidationError

from kubelambda.api.alias import AliasSpec
from kubelambda.api.common import is_digits
from kubelambda.api.errors import describe_errors
from kubelambda.api.esm import EventSourceMappingSpec
from kubelambda.api.function import FunctionSpec
from kubelambda.serving.errors import LambdaError, bad_parameter
from kubelambda.serving.names import ACCOUNT, function_arn, parse_function_name

Params = Mapping[str, Any]
Spec = dict[str, Any]


def validated(model: type[BaseModel], body: Spec, what: str) -> BaseModel:
    """`body` checked by a resource model; InvalidParameterValueException names the fields."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        lines = describe_errors(exc, model)
        raise bad_parameter(f"{what}: {'; '.join(lines)}") from None


def sha256_base64(hex_digest: str | None) -> str:
    """Lambda's CodeSha256: the base64 of the digest (manifests and status hold hex)."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode() if hex_digest else ""


def sha256_hex(b64_digest: str) -> str:
    try:
        raw = base64.b64decode(b64_digest, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise bad_parameter(f"CodeSha256 {b64_digest!r} is not a base64 sha256 digest")
    return raw.hex()


# Members we cannot honour; refused when set to anything but their "off" value.
_UNSUPPORTED: dict[str, Callable[[Any], bool]] = {
    "VpcConfig": lambda v: bool((v or {}).get("SubnetIds") or (v or {}).get("SecurityGroupIds")),
    "FileSystemConfigs": bool,
    "CodeSigningConfigArn": bool,
    "SnapStart": lambda v: (v or {}).get("ApplyOn", "None") != "None",
}


def refuse_unsupported(params: Params) -> None:
    for member, is_set in _UNSUPPORTED.items():
        if params.get(member) is not None and is_set(params[member]):
            raise bad_parameter(f"{member} is not supported by kubelambda")


def destination_spec(arn: str, region: str, namespace: str) -> Spec:
    """A destination ARN (function, SQS) or an http(s) URL -> a Destination manifest."""
    if arn.startswith(("http://", "https://")):
        return {"sqs": arn} if "sqs" in (urlparse(arn).hostname or "") else {"url": arn}
    if arn.startswith("nats:"):
        return {"nats": arn.removeprefix("nats:")}
    parts = arn.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and parts[2] == "sqs":
        host = f"sqs.{parts[3] or region}.amazonaws.com"
        return {"sqs": f"https://{host}/{parts[4] or ACCOUNT}/{parts[5]}"}
    if len(parts) >= 7 and parts[0] == "arn" and parts[2] == "lambda" and parts[5] == "function":
        ref = parse_function_name(arn, None, namespace)
        if ref.namespace != namespace:
            raise bad_parameter(f"destination {arn}: a function of another namespace")
        return {"function": ref.name}
    raise bad_parameter(
        f"destination {arn!r}: use a function ARN, an SQS queue ARN or URL, an http(s) URL or "
        "nats:SUBJECT"
    )


def destination_arn(dest: Mapping[str, Any], region: str, namespace: str) -> str:
    if dest.get("function"):
        return function_arn(region, namespace, str(dest["function"]))
    if dest.get("sqs"):
        url = urlparse(str(dest["sqs"]))
        parts = [p for p in url.path.split("/") if p]
        if len(parts) == 2 and (url.hostname or "").startswith("sqs."):
            return f"arn:aws:sqs:{region}:{parts[0]}:{parts[1]}"
        return str(dest["sqs"])
    if dest.get("nats"):
        return f"nats:{dest['nats']}"
    return str(dest.get("url", ""))


def function_spec(
    params: Params,
    code: Spec,
    layers: list[Spec],
    region: str,
    namespace: str,
    base: Spec | None = None,
) -> Spec:
    """A Function spec (manifest form) from CreateFunction's or UpdateFunctionConfiguration's
    members, over `base` (the current spec) when updating."""
    refuse_unsupported(params)
    spec: Spec = dict(base or {})
    spec["code"] = code
    simple = {
        "Runtime": "runtime",
        "Handler": "handler",
        "Description": "description",
        "Timeout": "timeout",
        "MemorySize": "memorySize",
        "PackageType": "packageType",
        "Architectures": "architectures",
    }
    for member, name in simple.items():
        if params.get(member) is not None:
            spec[name] = params[member]
    if params.get("Environment") is not None:
        variables = params["Environment"].get("Variables") or {}
        env = dict(spec.get("environment") or {})
        env["variables"] = variables
        spec["environment"] = env
    if params.get("EphemeralStorage") is not None:
        spec["ephemeralStorage"] = params["EphemeralStorage"].get("Size")
    if params.get("Layers") is not None:
        spec["layers"] = layers
    if params.get("ImageConfig") is not None:
        image = params["ImageConfig"]
        config = {
            "entryPoint": image.get("EntryPoint"),
            "command": image.get("Command"),
            "workingDirectory": image.get("WorkingDirectory"),
        }
        spec["imageConfig"] = {k: v for k, v in config.items() if v} or None
    if params.get("LoggingConfig") is not None:
        logging = params["LoggingConfig"]
        config = {
            "logFormat": logging.get("LogFormat"),
            "applicationLogLevel": logging.get("ApplicationLogLevel"),
            "systemLogLevel": logging.get("SystemLogLevel"),
            "logGroup": logging.get("LogGroup"),
        }
        spec["loggingConfig"] = {k: v for k, v in config.items() if v}
    if params.get("DeadLetterConfig") is not None:
        target = params["DeadLetterConfig"].get("TargetArn")
        spec["deadLetterConfig"] = destination_spec(target, region, namespace) if target else None
    spec = {k: v for k, v in spec.items() if v is not None}
    validated(FunctionSpec, spec, "function configuration")
    return spec


def code_members(params: Params) -> str:
    """Which code source a request names: ZipFile, S3 or ImageUri (exactly one)."""
    chosen = [m for m in ("ZipFile", "S3Bucket", "ImageUri") if params.get(m)]
    if params.get("S3Key") and "S3Bucket" not in chosen:
        raise bad_parameter("S3Key needs S3Bucket")
    if len(chosen) != 1:
        raise bad_parameter(
            "Please provide a source for function code: exactly one of ZipFile, "
            f"S3Bucket/S3Key or ImageUri (got {', '.join(chosen) or 'none'})"
        )
    if chosen[0] == "S3Bucket" and not params.get("S3Key"):
        raise bad_parameter("S3Bucket needs S3Key")
    return chosen[0]


def alias_spec(function: str, name: str, params: Params, base: Spec | None = None) -> Spec:
    spec: Spec = dict(base or {"functionName": function, "name": name})
    if params.get("FunctionVersion") is not None:
        spec["functionVersion"] = params["FunctionVersion"]
    if params.get("Description") is not None:
        spec["description"] = params["Description"]
    if params.get("RoutingConfig") is not None:
        weights = params["RoutingConfig"].get("AdditionalVersionWeights") or {}
        spec["routingConfig"] = {"additionalVersionWeights": weights}
    validated(AliasSpec, spec, "alias")
    return spec


def async_config(params: Params, region: str, namespace: str, base: Spec | None = None) -> Spec:
    """An asyncConfig (manifest form) from Put/UpdateFunctionEventInvokeConfig's members."""
    config: Spec = dict(base or {})
    if params.get("MaximumRetryAttempts") is not None:
        config["maximumRetryAttempts"] = params["MaximumRetryAttempts"]
    if params.get("MaximumEventAgeInSeconds") is not None:
        config["maximumEventAgeInSeconds"] = params["MaximumEventAgeInSeconds"]
    if params.get("DestinationConfig") is not None:
        destinations: Spec = dict(config.get("destinations") or {})
        for member, key in (("OnSuccess", "onSuccess"), ("OnFailure", "onFailure")):
            given = params["DestinationConfig"].get(member)
            if given is None:
                continue
            target = given.get("Destination")
            destinations[key] = destination_spec(target, region, namespace) if target else None
        config["destinations"] = {k: v for k, v in destinations.items() if v} or None
    config = {k: v for k, v in config.items() if v is not None}
    probe = {"runtime": "python3.12", "handler": "a.b", "code": {"inline": {"a.py": ""}}}
    validated(FunctionSpec, {**probe, "asyncConfig": config}, "event invoke config")
    return config


def url_config(params: Params, base: Spec | None = None) -> Spec:
    config: Spec = dict(base or {})
    if params.get("AuthType") is not None:
        config["authType"] = params["AuthType"]
    if params.get("InvokeMode") is not None:
        config["invokeMode"] = params["InvokeMode"]
    if params.get("Cors") is not None:
        cors = params["Cors"]
        names = {
            "AllowCredentials": "allowCredentials",
            "AllowHeaders": "allowHeaders",
            "AllowMethods": "allowMethods",
            "AllowOrigins": "allowOrigins",
            "ExposeHeaders": "exposeHeaders",
            "MaxAge": "maxAge",
        }
        config["cors"] = {names[k]: v for k, v in cors.items() if k in names}
    return config


def mapping_source(params: Params, region: str) -> Spec:
    """An EventSourceMapping source from EventSourceArn or SelfManagedEventSource."""
    arn = params.get("EventSourceArn")
    if arn:
        parts = str(arn).split(":")
        if len(parts) >= 6 and parts[0] == "arn" and parts[2] == "sqs":
            host = f"sqs.{parts[3] or region}.amazonaws.com"
            return {"sqs": {"queueUrl": f"https://{host}/{parts[4] or ACCOUNT}/{parts[5]}"}}
        if str(arn).startswith(("http://", "https://")):
            return {"sqs": {"queueUrl": arn}}
        raise bad_parameter(
            f"EventSourceArn {arn}: the API maps SQS queues; other sources (kafka, rabbitmq, "
            "redis, nats, schedule) are EventSourceMapping manifests"
        )
    managed = params.get("SelfManagedEventSource")
    if managed:
        servers = (managed.get("Endpoints") or {}).get("KAFKA_BOOTSTRAP_SERVERS") or []
        topics = params.get("Topics") or []
        if len(topics) != 1:
            raise bad_parameter("Topics must name exactly one Kafka topic")
        kafka: Spec = {"bootstrapServers": servers, "topic": topics[0]}
        group = (params.get("SelfManagedKafkaEventSourceConfig") or {}).get("ConsumerGroupId")
        if group:
            kafka["consumerGroupId"] = group
        return {"kafka": kafka}
    raise bad_parameter("EventSourceArn or SelfManagedEventSource is required")


_MAPPING_MEMBERS = {
    "BatchSize": "batchSize",
    "MaximumBatchingWindowInSeconds": "maximumBatchingWindowInSeconds",
    "StartingPosition": "startingPosition",
    "BisectBatchOnFunctionError": "bisectBatchOnFunctionError",
    "MaximumRetryAttempts": "maximumRetryAttempts",
    "MaximumRecordAgeInSeconds": "maximumRecordAgeInSeconds",
    "FunctionResponseTypes": "functionResponseTypes",
    "Enabled": "enabled",
}


def mapping_spec(
    params: Params, function: str, region: str, namespace: str, base: Spec | None = None
) -> Spec:
    spec: Spec = dict(base or {})
    spec["functionName"] = function
    if base is None:
        spec["source"] = mapping_source(params, region)
    for member, name in _MAPPING_MEMBERS.items():
        if params.get(member) is not None:
            spec[name] = params[member]
    if params.get("StartingPositionTimestamp") is not None:
        spec["startingPositionTimestamp"] = str(params["StartingPositionTimestamp"])
    if params.get("FilterCriteria") is not None:
        filters = params["FilterCriteria"].get("Filters") or []
        spec["filterCriteria"] = {"filters": [{"pattern": f.get("Pattern")} for f in filters]}
    if params.get("ScalingConfig") is not None:
        spec["scalingConfig"] = {
            "maximumConcurrency": params["ScalingConfig"].get("MaximumConcurrency")
        }
    on_failure = ((params.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    if on_failure:
        spec["destinationConfig"] = {"onFailure": destination_spec(on_failure, region, namespace)}
    validated(EventSourceMappingSpec, spec, "event source mapping")
    return spec


def qualifier_kind(qualifier: str | None) -> str:
    """ "latest", "version" or "alias" for a Qualifier member."""
    if qualifier in (None, "", "$LATEST"):
        return "latest"
    assert qualifier is not None
    return "version" if is_digits(qualifier) else "alias"


def require(params: Params, *members: str) -> None:
    missing = [m for m in members if params.get(m) in (None, "")]
    if missing:
        raise LambdaError(
            "InvalidParameterValueException",
            f"1 validation error detected: Value null at '{missing[0]}' failed to satisfy "
            "constraint: Member must not be null",
        )
