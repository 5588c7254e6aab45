"""SigV4 on `kubelambda dev --auth sigv4 --keys FILE`: boto3 and the AWS CLI sign as usual, and
each of AWS's four auth errors reaches botocore as the exception AWS would raise."""

from __future__ import annotations

import datetime
import http.client
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.component.auth.conftest import ADMIN, ALICE, client
from tests.component.gateway.conftest import KUBELAMBDA, DevGateway


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    error = exc.value.response["Error"]
    status = exc.value.response["ResponseMetadata"]["HTTPStatusCode"]
    return error["Code"], error["Message"], status


def test_signed_boto3_calls_work(secured: DevGateway) -> None:
    admin = client(secured, ADMIN)
    response = admin.invoke(FunctionName="echo", Payload=b'{"n": 1}')
    assert json.loads(response["Payload"].read()) == {"event": {"n": 1}}
    names = [f["FunctionName"] for f in admin.list_functions()["Functions"]]
    assert names == ["echo", "other", "private"]
    config = admin.get_function(FunctionName="echo")["Configuration"]
    assert config["Environment"]["Variables"] == {"SECRET_SETTING": "hunter2"}
    stream = admin.invoke_with_response_stream(FunctionName="echo", Payload=b"{}")
    assert [list(e) for e in stream["EventStream"]] == [["PayloadChunk"], ["InvokeComplete"]]


def test_the_aws_cli_signs_and_works(secured: DevGateway, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ADMIN[0],
        "AWS_SECRET_ACCESS_KEY": ADMIN[1],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    aws = [str(Path(sys.executable).parent / "aws"), "lambda", "--endpoint-url", secured.url]
    done = subprocess.run(
        [
            *aws,
            "invoke",
            "--function-name",
            "echo",
            "--payload",
            '{"cli": true}',
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == {"event": {"cli": True}}
    refused = subprocess.run(
        [*aws, "get-function", "--function-name", "echo"],
        env={**env, "AWS_SECRET_ACCESS_KEY": "wrong-secret-wrong-secret"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0 and "InvalidSignatureException" in refused.stderr


def test_no_credentials_is_missing_authentication_token(secured: DevGateway) -> None:
    unsigned = client(secured, ADMIN, signature_version=UNSIGNED)
    with pytest.raises(ClientError) as refused:
        unsigned.invoke(FunctionName="echo")
    assert code_of(refused) == (
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
        403,
    )


def test_an_unknown_key_is_an_unrecognized_client(secured: DevGateway) -> None:
    with pytest.raises(ClientError) as refused:
        client(secured, ("AKIANOSUCHKEY0000000", "whatever-secret-000000")).invoke(
            FunctionName="echo"
        )
    code, message, status = code_of(refused)
    assert (code, status) == ("UnrecognizedClientException", 403)
    assert message == "The security token included in the request is invalid."


def test_a_wrong_secret_or_an_old_signature_is_an_invalid_signature(secured: DevGateway) -> None:
    with pytest.raises(ClientError) as wrong:
        client(secured, (ADMIN[0], "not-the-secret-0000000000")).invoke(FunctionName="echo")
    code, message, status = code_of(wrong)
    assert (code, status) == ("InvalidSignatureException", 403)
    assert message.startswith("The request signature we calculated does not match")
    # Signed six minutes ago: beyond the five minutes of clock skew AWS allows.
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=6)
    signer = client(secured, ADMIN)
    with (
        mock.patch("botocore.auth.get_current_datetime", return_value=past),
        pytest.raises(ClientError) as expired,
    ):
        signer.invoke(FunctionName="echo")
    code, message, _ = code_of(expired)
    assert code == "InvalidSignatureException" and message.startswith("Signature expired:")


def test_not_allowed_is_access_denied_naming_user_action_and_arn(secured: DevGateway) -> None:
    alice = client(secured, ALICE)
    assert json.loads(alice.invoke(FunctionName="echo")["Payload"].read()) == {"event": {}}
    with pytest.raises(ClientError) as refused:
        alice.invoke(FunctionName="other")
    code, message, status = code_of(refused)
    assert (code, status) == ("AccessDeniedException", 403)
    assert message == (
        "User: arn:aws:iam::000000000000:user/alice is not authorized to perform: "
        "lambda:InvokeFunction on resource: arn:aws:lambda:us-east-1:000000000000:function:"
        "default.other because no identity-based policy allows the lambda:InvokeFunction action"
    )
    with pytest.raises(ClientError) as listing:
        alice.list_functions()
    assert code_of(listing)[0] == "AccessDeniedException"


def test_environment_variables_only_for_callers_who_may_read(secured: DevGateway) -> None:
    # alice may invoke echo but not read it: she sees its configuration without variables.
    config = client(secured, ALICE).get_function_configuration(FunctionName="echo")
    assert config["FunctionName"] == "echo" and "Environment" not in config
    body = client(secured, ALICE).get_function(FunctionName="echo")
    assert "Environment" not in body["Configuration"]
    with pytest.raises(ClientError) as refused:
        client(secured, ALICE).get_function(FunctionName="other")
    assert "lambda:GetFunction on resource" in code_of(refused)[1]


def signed_url_request(
    url: str, key: tuple[str, str] | None, method: str = "GET", body: bytes = b""
) -> tuple[int, bytes]:
    headers: dict[str, str] = {}
    if key is not None:
        request = AWSRequest(method=method, url=url, data=body)
        SigV4Auth(Credentials(*key), "lambda", "us-east-1").add_auth(request)
        headers = dict(request.headers.items())
    parts = urlsplit(url)
    connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=60)
    try:
        headers.setdefault("Host", parts.netloc)
        connection.request(method, parts.path or "/", body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_an_aws_iam_url_refuses_unsigned_and_accepts_signed(secured: DevGateway) -> None:
    url: str = client(secured, ADMIN).get_function_url_config(FunctionName="private")["FunctionUrl"]
    status, body = signed_url_request(url, None)
    assert status == 403 and b"Missing Authentication Token" in body
    status, body = signed_url_request(url, (ADMIN[0], "not-the-secret-0000000000"))
    assert status == 403 and b"signature" in body
    status, body = signed_url_request(url, ADMIN, "POST", b'{"x": 1}')
    assert (status, body) == (200, b"arn:aws:iam::000000000000:user/admin")
    # the path form is a URL too, signed for the gateway's own host
    port = urlsplit(url).port
    status, body = signed_url_request(f"http://127.0.0.1:{port}/urls/default/private/", ALICE)
    assert (status, body) == (200, b"arn:aws:iam::000000000000:user/alice")
    status, _ = signed_url_request(f"http://127.0.0.1:{port}/urls/default/private/", None)
    assert status == 403


def test_probes_and_metrics_stay_open(secured: DevGateway) -> None:
    port = urlsplit(secured.url).port
    for path in ("/healthz", "/readyz", "/metrics"):
        status, _ = signed_url_request(f"http://127.0.0.1:{port}{path}", None)
        assert status == 200, path


def test_kubelambda_logs_signs_and_needs_get(secured: DevGateway) -> None:
    client(secured, ADMIN).invoke(FunctionName="echo", Payload=b'{"n": 2}')

    def logs(key: tuple[str, str] | None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        if key is not None:
            env.update(AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1])
        return subprocess.run(
            [KUBELAMBDA, "logs", "echo", "--endpoint", secured.url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )

    admin = logs(ADMIN)
    assert admin.returncode == 0, admin.stderr
    assert "[$LATEST] START RequestId:" in admin.stdout
    unsigned = logs(None)
    assert unsigned.returncode == 1
    assert "MissingAuthenticationTokenException" in unsigned.stderr
    # alice may invoke echo but not `get` it: what it printed could show its environment.
    alice = logs(ALICE)
    assert alice.returncode == 1
    assert "AccessDeniedException" in alice.stderr and "kubelambda:GetFunctionLogs" in alice.stderr


def test_operations_not_served_authenticate_first(secured: DevGateway) -> None:
    unsigned = client(secured, ADMIN, signature_version=UNSIGNED)
    with pytest.raises(ClientError) as refused:
        unsigned.get_policy(FunctionName="echo")
    assert code_of(refused)[0] == "MissingAuthenticationTokenException"
    with pytest.raises(ClientError) as unserved:
        client(secured, ADMIN).get_policy(FunctionName="echo")
    code, message, status = code_of(unserved)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "GetPolicy" in message


def test_deploys_need_the_key_rules_write_verbs(secured: DevGateway, tmp_path: Path) -> None:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    create = {
        "Runtime": "python3.11",
        "Role": "arn:aws:iam::000000000000:role/none",
        "Handler": "app.handler",
        "Code": {"ZipFile": buffer.getvalue()},
    }
    unsigned = client(secured, ADMIN, signature_version=UNSIGNED)
    with pytest.raises(ClientError) as refused:
        unsigned.create_function(FunctionName="deployed", **create)
    assert code_of(refused)[0] == "MissingAuthenticationTokenException"
    # alice's key grants `invoke` only: a deploy names her, the action and the function.
    with pytest.raises(ClientError) as denied:
        client(secured, ALICE).create_function(FunctionName="deployed", **create)
    code, message, status = code_of(denied)
    assert (code, status) == ("AccessDeniedException", 403)
    assert "alice" in message and "lambda:CreateFunction" in message and "deployed" in message
    admin = client(secured, ADMIN)  # no `verbs` in the file: every verb
    created = admin.create_function(FunctionName="deployed", **create)
    assert created["FunctionName"] == "deployed"
    with pytest.raises(ClientError) as undeletable:
        client(secured, ALICE).delete_function(FunctionName="deployed")
    assert code_of(undeletable)[0] == "AccessDeniedException"
    admin.delete_function(FunctionName="deployed")


def _declared_but_unsent(secured: DevGateway, headers: dict[str, str]) -> tuple[int, str]:
    """POST an Invoke that declares a 1 MB body and sends none of it: a gateway that read the
    body before auth would wait for it and answer that it stalled."""
    port = urlsplit(secured.url).port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest("POST", "/2015-03-31/functions/echo/invocations")
        for name, value in {**headers, "Content-Length": str(1 << 20)}.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.getheader("x-amzn-ErrorType") or ""
    finally:
        connection.close()


def test_auth_refuses_on_headers_before_any_body_is_read(secured: DevGateway) -> None:
    status, error = _declared_but_unsent(secured, {})
    assert (status, error) == (403, "MissingAuthenticationTokenException")
    request = AWSRequest(
        method="POST", url=f"{secured.url}/2015-03-31/functions/echo/invocations", data=b"{}"
    )
    SigV4Auth(Credentials("AKIANOSUCHKEY0000000", "x" * 20), "lambda", "us-east-1").add_auth(
        request
    )
    signed = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    status, error = _declared_but_unsent(secured, signed)
    assert (status, error) == (403, "UnrecognizedClientException")
