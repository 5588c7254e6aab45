"""The one list of Lambda operations the gateway serves.

The routes (`kubelambda.gateway.control_api`), the "not served" fallback and the table in
docs/compatibility.md are all made from `SERVED`; unit tests check that they agree and that
every name is an operation of botocore's Lambda model.
"""

from __future__ import annotations

from dataclasses import dataclass

# Served by gateway/api.py itself (the data plane), not by the control API.
DATA_PLANE: tuple[str, ...] = ("Invoke", "InvokeWithResponseStream")


@dataclass(frozen=True)
class Group:
    title: str
    operations: tuple[str, ...]
    note: str = ""


GROUPS: tuple[Group, ...] = (
    Group(
        "Functions",
        (
            "CreateFunction",
            "GetFunction",
            "GetFunctionConfiguration",
            "ListFunctions",
            "UpdateFunctionCode",
            "UpdateFunctionConfiguration",
            "DeleteFunction",
        ),
        "ZipFile, S3Bucket/S3Key (through the code store) and ImageUri; Publish",
    ),
    Group(
        "Versions and aliases",
        (
            "PublishVersion",
            "ListVersionsByFunction",
            "CreateAlias",
            "GetAlias",
            "UpdateAlias",
            "DeleteAlias",
            "ListAliases",
        ),
        "CodeSha256 and RevisionId preconditions; weighted aliases",
    ),
    Group(
        "Concurrency",
        (
            "PutFunctionConcurrency",
            "GetFunctionConcurrency",
            "DeleteFunctionConcurrency",
            "PutProvisionedConcurrencyConfig",
            "GetProvisionedConcurrencyConfig",
            "DeleteProvisionedConcurrencyConfig",
            "ListProvisionedConcurrencyConfigs",
        ),
        "reserved concurrency 0 throttles every call; provisioned on versions and aliases",
    ),
    Group(
        "Asynchronous invocation",
        (
            "PutFunctionEventInvokeConfig",
            "GetFunctionEventInvokeConfig",
            "UpdateFunctionEventInvokeConfig",
            "DeleteFunctionEventInvokeConfig",
            "ListFunctionEventInvokeConfigs",
        ),
        "on $LATEST and aliases; destinations: functions, SQS, http(s) URLs",
    ),
    Group(
        "Event source mappings",
        (
            "CreateEventSourceMapping",
            "GetEventSourceMapping",
            "UpdateEventSourceMapping",
            "DeleteEventSourceMapping",
            "ListEventSourceMappings",
        ),
        "SQS (EventSourceArn) and self-managed Kafka; other sources through manifests",
    ),
    Group(
        "Function URLs",
        (
            "CreateFunctionUrlConfig",
            "GetFunctionUrlConfig",
            "UpdateFunctionUrlConfig",
            "DeleteFunctionUrlConfig",
            "ListFunctionUrlConfigs",
        ),
        "on $LATEST",
    ),
    Group(
        "Layers",
        (
            "PublishLayerVersion",
            "GetLayerVersion",
            "GetLayerVersionByArn",
            "ListLayers",
            "ListLayerVersions",
            "DeleteLayerVersion",
        ),
        "functions use layers by ARN",
    ),
    Group(
        "Tags and account",
        ("TagResource", "UntagResource", "ListTags", "GetAccountSettings"),
        "tags on functions; limits and usage from admission",
    ),
)

SERVED: tuple[str, ...] = tuple(op for group in GROUPS for op in group.operations)


def snake(operation: str) -> str:
    """`CreateFunction` -> `create_function`: the service method that serves an operation."""
    out = []
    for i, ch in enumerate(operation):
        if ch.isupper() and i and not operation[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def compatibility_table() -> str:
    """The Markdown table of served operations, for docs/compatibility.md."""
    lines = ["| group | operations | notes |", "|---|---|---|"]
    for group in GROUPS:
        ops = ", ".join(f"`{op}`" for op in group.operations)
        lines.append(f"| {group.title} | {ops} | {group.note} |")
    lines.append(f"| Invoke | {', '.join(f'`{op}`' for op in DATA_PLANE)} | the data plane |")
    return "\n".join(lines)
