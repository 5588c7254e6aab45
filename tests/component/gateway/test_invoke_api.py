"""The Invoke API through boto3, against a real `kubelambda dev` gateway and real environments."""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.component.gateway.conftest import DevGateway


def invoke(client: Any, name: str, payload: Any = None, **kw: Any) -> tuple[dict[str, Any], Any]:
    body = json.dumps(payload if payload is not None else {}).encode()
    response = client.invoke(FunctionName=name, Payload=body, **kw)
    raw = response["Payload"].read()
    return response, json.loads(raw) if raw else None


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, dict[str, Any]]:
    response = exc.value.response
    return response["Error"]["Code"], response


def test_result_and_executed_version_for_each_qualifier(gateway: DevGateway) -> None:
    client = gateway.client()
    response, body = invoke(client, "echo", {"n": 1})
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert body["event"] == {"n": 1} and body["who"] == "latest"
    assert body["version"] == "$LATEST"

    for qualifier, who in (("1", "one"), ("2", "two"), ("$LATEST", "latest")):
        response, body = invoke(client, "echo", Qualifier=qualifier)
        assert response["ExecutedVersion"] == qualifier
        assert body["who"] == who and body["version"] == qualifier

    response, body = invoke(client, "echo:1")
    assert body["who"] == "one"
    assert body["arn"].endswith(":function:default.echo:1")


def test_namespaced_name_and_arn_forms(gateway: DevGateway) -> None:
    client = gateway.client()
    for name in (
        "default.echo",
        "arn:aws:lambda:us-east-1:000000000000:function:echo",
        "arn:aws:lambda:us-east-1:000000000000:function:default.echo:2",
        "000000000000:function:echo:2",
    ):
        response, body = invoke(client, name)
        assert response["StatusCode"] == 200, name
    assert body["who"] == "two"


def test_client_context_reaches_the_function(gateway: DevGateway) -> None:
    context = base64.b64encode(json.dumps({"custom": {"tenant": "acme"}}).encode()).decode()
    _, body = invoke(gateway.client(), "echo", ClientContext=context)
    assert body["clientContext"] == {"tenant": "acme"}


def test_dry_run_answers_204_without_running(gateway: DevGateway) -> None:
    response = gateway.client().invoke(FunctionName="echo", InvocationType="DryRun")
    assert response["StatusCode"] == 204
    assert response["Payload"].read() == b""
    with pytest.raises(ClientError) as refused:
        gateway.client().invoke(FunctionName="nope", InvocationType="DryRun")
    assert error_of(refused)[0] == "ResourceNotFoundException"


def test_log_tail_holds_this_invocations_report(gateway: DevGateway) -> None:
    response, _ = invoke(gateway.client(), "fail", {"amount": 5}, LogType="Tail")
    tail = base64.b64decode(response["LogResult"]).decode()
    request_id = response["ResponseMetadata"]["RequestId"]
    assert "about to fail" in tail
    assert f"REPORT RequestId: {request_id}" in tail
    assert len(tail.encode()) <= 4096


def test_function_error_is_unhandled_with_lambdas_body(gateway: DevGateway) -> None:
    response, body = invoke(gateway.client(), "fail", {"amount": 7})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "InsufficientFunds"
    assert body["errorMessage"] == "balance too low for 7"
    assert any("raise InsufficientFunds" in line for line in body["stackTrace"])


@pytest.mark.parametrize(
    ("name", "qualifier"), [("nope", None), ("echo", "99"), ("echo", "nosuchalias")]
)
def test_unknown_function_version_or_alias(
    gateway: DevGateway, name: str, qualifier: str | None
) -> None:
    kw = {"Qualifier": qualifier} if qualifier else {}
    with pytest.raises(ClientError) as refused:
        gateway.client().invoke(FunctionName=name, Payload=b"{}", **kw)
    code, response = error_of(refused)
    assert code == "ResourceNotFoundException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "Function not found" in response["Error"]["Message"]


def test_request_over_6_mb_is_too_large(gateway: DevGateway) -> None:
    payload = json.dumps({"blob": "x" * (6 * 1024 * 1024)}).encode()
    with pytest.raises(ClientError) as refused:
        gateway.client().invoke(FunctionName="echo", Payload=payload)
    code, response = error_of(refused)
    assert code == "RequestTooLargeException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_payload_that_is_not_json_is_refused(gateway: DevGateway) -> None:
    with pytest.raises(ClientError) as refused:
        gateway.client().invoke(FunctionName="echo", Payload=b"{not json")
    code, response = error_of(refused)
    assert code == "InvalidRequestContentException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Could not parse request body into json" in response["Error"]["Message"]


def test_reserved_concurrency_zero_throttles_with_reason(gateway: DevGateway) -> None:
    with pytest.raises(ClientError) as refused:
        gateway.client().invoke(FunctionName="throttled", Payload=b"{}")
    code, response = error_of(refused)
    assert code == "TooManyRequestsException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"


def test_weighted_alias_splits_within_three_points(gateway: DevGateway) -> None:
    # The split is the gateway's: counted from the header boto3 reads ExecutedVersion from, on
    # one kept-alive connection (2,000 boto3 calls cost 20 s of client CPU, not the gateway's).
    parsed = urllib.parse.urlsplit(gateway.url)
    conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)
    calls, versions = 2000, []
    try:
        for _ in range(calls):
            conn.request("POST", "/2015-03-31/functions/echo:live/invocations", body=b"{}")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            versions.append(response.getheader("X-Amz-Executed-Version"))
    finally:
        conn.close()
    assert set(versions) == {"1", "2"}
    share = versions.count("2") / calls
    assert abs(share - 0.2) <= 0.03, share
    sdk = gateway.client().invoke(FunctionName="echo", Qualifier="live")
    assert sdk["ExecutedVersion"] in {"1", "2"}


def test_read_only_control_calls(gateway: DevGateway) -> None:
    client = gateway.client()
    config = client.get_function_configuration(FunctionName="echo")
    assert config["FunctionName"] == "echo" and config["Runtime"] == "python3.11"
    assert config["Version"] == "$LATEST" and config["Environment"]["Variables"] == {
        "WHO": "latest"
    }
    assert (
        client.get_function(FunctionName="echo", Qualifier="1")["Configuration"]["Version"] == "1"
    )
    names = {f["FunctionName"] for f in client.list_functions()["Functions"]}
    assert {"echo", "fail", "slow", "reserved", "throttled"} <= names
    versions = [
        v["Version"] for v in client.list_versions_by_function(FunctionName="echo")["Versions"]
    ]
    assert versions == ["$LATEST", "1", "2"]
    aliases = client.list_aliases(FunctionName="echo")["Aliases"]
    assert [(a["Name"], a["FunctionVersion"]) for a in aliases] == [("live", "1")]
    alias = client.get_alias(FunctionName="echo", Name="live")
    assert alias["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.2}
    assert (
        client.get_function_concurrency(FunctionName="reserved")["ReservedConcurrentExecutions"]
        == 3
    )
    assert "ReservedConcurrentExecutions" not in client.get_function_concurrency(
        FunctionName="echo"
    )
    with pytest.raises(ClientError) as refused:
        client.get_alias(FunctionName="echo", Name="nope")
    assert error_of(refused)[0] == "ResourceNotFoundException"


def test_metrics_and_probes(gateway: DevGateway) -> None:
    import urllib.request

    invoke(gateway.client(), "echo", Qualifier="1")
    with urllib.request.urlopen(f"{gateway.url}/metrics") as response:
        text = response.read().decode()
    assert (
        'kubelambda_invocations_total{alias="",function="echo",namespace="default",version="1"}'
        in text
    )
    assert "kubelambda_duration_seconds_bucket" in text
    assert "kubelambda_concurrent_executions" in text
    for probe in ("healthz", "readyz"):
        with urllib.request.urlopen(f"{gateway.url}/{probe}") as response:
            assert response.status == 200


def test_environment_that_dies_mid_invoke_gives_a_lambda_error_and_recovers(
    gateway: DevGateway,
) -> None:
    client = gateway.client()
    _, before = invoke(client, "crash")
    response, body = invoke(client, "crash", {"crash": True})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    request_id = response["ResponseMetadata"]["RequestId"]
    assert body["errorMessage"] == (
        f"RequestId: {request_id} Error: Runtime exited with error: exit status 3"
    )
    response, after = invoke(client, "crash")
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert after["pid"] != before["pid"]
