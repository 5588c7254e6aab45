"""A deploy pipeline written against AWS Lambda with boto3, run unchanged against kubelambda.

    python lambda_flow.py ENDPOINT_URL FUNCTION_NAME

Create from a zip, wait function-active, invoke, update the code, wait function-updated, invoke
the new code, publish two versions, an alias with 10 % on the second, reserved concurrency 0
(429), delete it, delete the function (404). Prints one JSON line of what it saw; exits non-zero
on the first surprise.
"""

from __future__ import annotations

import io
import json
import sys
import time
import zipfile
from collections import Counter
from typing import Any

import boto3
from botocore.config import Config

ROLE = "arn:aws:iam::000000000000:role/lambda-role"
DRAWS = 400


def code(tag: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "app.py",
            "import os\n\ndef handler(event, context):\n"
            f"    version = os.environ['AWS_LAMBDA_FUNCTION_VERSION']\n"
            f"    return {{'code': '{tag}', 'version': version}}\n",
        )
    return buffer.getvalue()


def invoke(client: Any, name: str) -> dict[str, Any]:
    answer = client.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in answer, answer["Payload"].read()
    body: dict[str, Any] = json.loads(answer["Payload"].read())
    return body


def wait(client: Any, waiter: str, **kwargs: Any) -> None:
    client.get_waiter(waiter).wait(**kwargs, WaiterConfig={"Delay": 1, "MaxAttempts": 120})


def until(condition: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def throttled(client: Any, name: str) -> dict[str, Any] | None:
    try:
        client.invoke(FunctionName=name, Payload=b"{}")
    except client.exceptions.TooManyRequestsException as exc:
        error: dict[str, Any] = exc.response
        return error
    return None


def main(endpoint: str, name: str) -> dict[str, Any]:
    client = boto3.client(
        "lambda",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=120),
    )
    seen: dict[str, Any] = {}
    created = client.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": code("one")},
        Timeout=10,
    )
    seen["created_state"] = created["State"]
    wait(client, "function_active", FunctionName=name)
    seen["first"] = invoke(client, name)

    updated = client.update_function_code(FunctionName=name, ZipFile=code("two"))
    seen["update_status"] = updated["LastUpdateStatus"]
    wait(client, "function_updated", FunctionName=name)
    seen["second"] = invoke(client, name)

    one = client.publish_version(FunctionName=name, Description="two")
    wait(client, "published_version_active", FunctionName=name, Qualifier=one["Version"])
    client.update_function_code(FunctionName=name, ZipFile=code("three"))
    wait(client, "function_updated", FunctionName=name)
    two = client.publish_version(FunctionName=name)
    wait(client, "published_version_active", FunctionName=name, Qualifier=two["Version"])
    seen["versions"] = [one["Version"], two["Version"]]

    client.create_alias(
        FunctionName=name,
        Name="live",
        FunctionVersion=one["Version"],
        RoutingConfig={"AdditionalVersionWeights": {two["Version"]: 0.1}},
    )
    counts = Counter(invoke(client, f"{name}:live")["version"] for _ in range(DRAWS))
    seen["alias_counts"] = dict(counts)

    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    refusal = until(lambda: throttled(client, name), 60, "a throttle at concurrency 0")
    seen["throttle"] = {
        "status": refusal["ResponseMetadata"]["HTTPStatusCode"],
        "reason": refusal.get("Reason") or refusal["Error"].get("Reason"),
    }
    client.delete_function_concurrency(FunctionName=name)
    seen["after_concurrency"] = until(
        lambda: throttled(client, name) is None and invoke(client, name), 60, "invokes again"
    )

    client.delete_function(FunctionName=name)
    try:
        client.get_function(FunctionName=name)
    except client.exceptions.ResourceNotFoundException as exc:
        seen["deleted_status"] = exc.response["ResponseMetadata"]["HTTPStatusCode"]
    return seen


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2]), sort_keys=True))
