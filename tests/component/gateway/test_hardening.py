"""Issue 12's defects, each from its reproduction, against a real `kubelambda dev` gateway.

One gateway (the `hostile/` functions, `--concurrency-limit 12 --unreserved-floor 5`, a
non-default region) serves the module; the kill -9 case starts its own.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import signal
import socket
import stat
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from botocore.exceptions import ClientError

from kubelambda.gateway.http import HEADER_TIMEOUT
from kubelambda.runtime.process import MAX_LINE
from tests.component.gateway.conftest import DevGateway

HOSTILE = Path(__file__).parent / "hostile"
REGION = "eu-west-1"


def _slip_zip(outside: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("lnk")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, str(outside))
        archive.writestr("lnk/pwned.txt", "pwned")
        archive.writestr("app.py", "def handler(event, context):\n    return 1\n")
    return buffer.getvalue()


def _folder(root: Path) -> tuple[Path, Path]:
    import shutil

    folder = root / "fns"
    shutil.copytree(HOSTILE, folder)
    outside = root / "outside"
    outside.mkdir()
    (folder / "slip.zip").write_bytes(_slip_zip(outside))
    (folder / "slip.yaml").write_text(
        "apiVersion: kubelambda.dev/v1alpha1\nkind: Function\nmetadata: {name: slip}\n"
        "spec: {runtime: python3.11, handler: app.handler, code: {path: ./slip.zip}}\n"
    )
    return folder, outside


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevGateway, Path]]:
    folder, outside = _folder(tmp_path_factory.mktemp("hostile"))
    dev = DevGateway(
        folder,
        "--no-reload",
        "--warm-per-runtime",
        "1",
        "--concurrency-limit",
        "12",
        "--unreserved-floor",
        "5",
        "--region",
        REGION,
    )
    yield dev, outside
    dev.stop()


@pytest.fixture
def gw(hostile: tuple[DevGateway, Path]) -> DevGateway:
    return hostile[0]


def invoke(dev: DevGateway, name: str, payload: Any = None, **kw: Any) -> dict[str, Any]:
    response = dev.client().invoke(
        FunctionName=name, Payload=json.dumps(payload or {}).encode(), **kw
    )
    response["Body"] = json.loads(response["Payload"].read())
    return response


def raw(
    dev: DevGateway, method: str, path: str, body: bytes = b"{}", **headers: str
) -> requests.Response:
    return requests.request(method, dev.url + path, data=body, headers=headers, timeout=30)


def assert_lambda_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["x-amzn-ErrorType"] == code
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


INVOKE = "/2015-03-31/functions/{}/invocations"


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# 1.


@pytest.mark.parametrize(
    "context",
    ["!!", base64.b64encode(b"not json").decode(), base64.b64encode(b"[1,2]").decode()]
    + [base64.b64encode(b'{"p":"' + b"x" * n + b'"}').decode() for n in (2682, 5920)],
)
def test_bad_client_context_is_a_400_and_the_warm_environment_survives(
    gw: DevGateway, context: str
) -> None:
    before = invoke(gw, "warm")["Body"]["pid"]
    response = raw(gw, "POST", INVOKE.format("warm"), **{"X-Amz-Client-Context": context})
    assert_lambda_error(response, 400, "InvalidRequestContentException")
    assert invoke(gw, "warm")["Body"]["pid"] == before  # same warm environment


# 2.


def test_a_zip_that_writes_through_a_link_is_refused_at_load(
    hostile: tuple[DevGateway, Path],
) -> None:
    dev, outside = hostile
    assert "slip:$LATEST: not served" in dev.log()  # said when the folder is loaded
    assert "outside the code folder" in dev.log()
    response = raw(dev, "POST", INVOKE.format("slip"))
    body = assert_lambda_error(response, 400, "InvalidParameterValueException")
    assert "link" in body["message"]
    assert not (outside / "pwned.txt").exists()


# 4.


def test_output_without_newlines_is_cut_and_does_not_stall_others(gw: DevGateway) -> None:
    server = psutil.Process(gw.proc.pid)
    invoke(gw, "warm")
    rss_before = server.memory_info().rss
    done = threading.Event()
    result: dict[str, Any] = {}

    def spew() -> None:
        result.update(invoke(gw, "spew", {"mib": 100}, LogType="Tail"))
        done.set()

    thread = threading.Thread(target=spew)
    thread.start()
    served_meanwhile = 0
    while not done.is_set():
        invoke(gw, "warm")
        served_meanwhile += 1 if not done.is_set() else 0
    thread.join()
    assert result["Body"] == "done" and "FunctionError" not in result
    assert served_meanwhile > 0  # another function was served while the spew ran
    growth = (server.memory_info().rss - rss_before) / 2**20
    assert growth < 100, f"the gateway grew by {growth:.0f} MiB"
    # The terminal writes functions' lines in batches, after the answer: wait for the END line,
    # written after everything the function printed.
    gw.wait_for_log(rf"END RequestId: {re.escape(result['ResponseMetadata']['RequestId'])}")
    prefix = "[spew:$LATEST] "  # dev mode's label on each line a function writes
    lines = [line.removeprefix(prefix) for line in gw.log().splitlines() if "xxxx" in line[:40]]
    assert lines and max(len(line) for line in lines) <= MAX_LINE
    assert sum(len(line) for line in lines) >= 100 * 2**20  # nothing was lost


# 5.


def test_over_memory_size_is_lambdas_out_of_memory_and_the_next_call_is_fresh(
    gw: DevGateway,
) -> None:
    first = invoke(gw, "hog", {"mb": 16})
    assert "FunctionError" not in first, first["Body"]
    response = invoke(gw, "hog", {"mb": 1024})
    assert response["FunctionError"] == "Unhandled"
    assert response["Body"]["errorType"] == "Runtime.OutOfMemory"
    assert response["Body"]["errorMessage"].endswith("Runtime exited with error: signal: killed")
    after = invoke(gw, "hog", {"mb": 16})
    assert "FunctionError" not in after
    assert after["Body"]["pid"] != first["Body"]["pid"]  # a fresh runtime
    gw.wait_for_log(r"REPORT .*Error Type: Runtime\.OutOfMemory")


# 6.


def test_a_setsid_daemon_dies_with_its_environments_reset(gw: DevGateway) -> None:
    daemon = invoke(gw, "escape")["Body"]["daemon"]
    assert alive(daemon)
    crashed = invoke(gw, "escape", {"crash": True})  # the runtime exits: the environment resets
    assert crashed["Body"]["errorType"] == "Runtime.ExitError"
    wait_until(lambda: not alive(daemon), 10, "the setsid daemon's death")


def test_a_setsid_daemon_dies_with_a_killed_dev_server(tmp_path: Path) -> None:
    folder, _ = _folder(tmp_path)
    dev = DevGateway(folder, "--no-reload", "--warm-per-runtime", "0")
    try:
        daemon = invoke(dev, "escape")["Body"]["daemon"]
        assert alive(daemon)
        dev.proc.send_signal(signal.SIGKILL)
        dev.proc.wait(10)
        wait_until(lambda: not alive(daemon), 10, "the setsid daemon's death")
    finally:
        if dev.proc.poll() is None:
            dev.stop()
        dev._log.close()


# 7.


def test_slow_header_clients_are_closed(gw: DevGateway) -> None:
    host, port = gw.url.removeprefix("http://").split(":")
    clients = []
    for _ in range(100):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(b"POST /2015-03-31/functions/warm/invocations HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(HEADER_TIMEOUT + 10)
        clients.append(sock)
    try:
        for sock in clients:
            assert sock.recv(1024) == b""  # closed by the gateway (recv would time out)
    finally:
        for sock in clients:
            sock.close()
    invoke(gw, "warm")


def _chunks(total: int) -> Iterator[bytes]:
    piece = b"[" + b"1," * (2**19 - 1)
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)


def test_a_chunked_body_over_6_mb_is_refused_as_lambdas_json_413(gw: DevGateway) -> None:
    """Refused as soon as it passes 6 MB: the answer comes while the body is still open."""
    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=HEADER_TIMEOUT) as sock:
        sock.sendall(
            b"POST /2015-03-31/functions/warm/invocations HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        piece = b"1" * 2**16
        for _ in range(7 * 16):  # 7 MiB, and no final chunk: the body never ends
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)  # times out (fails) if the gateway waits for the rest
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"413", head
    assert b"x-amzn-ErrorType: RequestTooLargeException" in head
    assert "6291456" in json.loads(body)["message"]


def test_memory_stays_flat_under_40_concurrent_11_mib_uploads(gw: DevGateway) -> None:
    server = psutil.Process(gw.proc.pid)
    invoke(gw, "warm")
    before = server.memory_info().rss

    async def upload(index: int) -> int:
        import aiohttp

        async def chunked() -> Any:
            for piece in _chunks(11 * 2**20):
                yield piece

        data: Any = b"1" * (11 * 2**20) if index % 2 else chunked()
        async with aiohttp.ClientSession() as session:
            try:
                async with session.post(gw.url + INVOKE.format("warm"), data=data) as response:
                    return response.status
            except aiohttp.ClientError:
                return -1  # refused before the whole body was sent: the connection closed

    async def all_uploads() -> list[int]:
        return await asyncio.gather(*(upload(i) for i in range(40)))

    statuses = asyncio.run(all_uploads())
    assert set(statuses) <= {413, -1} and 413 in statuses
    grown = (server.memory_info().rss - before) / 2**20
    assert grown < 100, f"the gateway kept {grown:.0f} MiB"
    invoke(gw, "warm")


# 8.


def test_unknown_routes_methods_and_malformed_http_are_lambda_json(gw: DevGateway) -> None:
    assert_lambda_error(raw(gw, "GET", "/nowhere"), 404, "ResourceNotFoundException")
    assert_lambda_error(raw(gw, "PATCH", INVOKE.format("warm")), 404, "ResourceNotFoundException")
    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GARBAGE \x00\x01 nonsense\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert (
        head.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400"))
        and b"x-amzn-ErrorType: InvalidRequestContent" in head
    )
    assert json.loads(body)["message"]


@pytest.mark.parametrize(
    ("operation", "kwargs"),
    [
        (
            "add_permission",
            {"FunctionName": "warm", "StatementId": "s", "Action": "a", "Principal": "p"},
        ),
        ("get_policy", {"FunctionName": "warm"}),
        ("get_function_code_signing_config", {"FunctionName": "warm"}),
        ("put_function_recursion_config", {"FunctionName": "warm", "RecursiveLoop": "Allow"}),
        ("list_code_signing_configs", {}),
    ],
)
def test_unserved_operations_name_themselves(
    gw: DevGateway, operation: str, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ClientError) as refused:
        getattr(gw.client(), operation)(**kwargs)
    error = refused.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "InvalidParameterValueException"
    name = "".join(part.title() for part in operation.split("_"))
    assert name in error["Error"]["Message"]


def test_a_path_number_that_is_no_number_is_a_400(gw: DevGateway) -> None:
    # Found by the fuzz suite: DeleteLayerVersion's VersionNumber travels in the path.
    reply = raw(gw, "DELETE", "/2018-10-31/layers/x/versions/x")
    assert_lambda_error(reply, 400, "InvalidParameterValueException")


def test_parameters_are_validated_as_lambda_does(gw: DevGateway) -> None:
    for path in (INVOKE.format("a" * 141), INVOKE.format("warm") + "?Qualifier=a.b"):
        assert_lambda_error(raw(gw, "POST", path), 400, "InvalidParameterValueException")
    assert_lambda_error(
        raw(gw, "POST", INVOKE.format("warm") + "?Qualifier="),
        400,
        "InvalidParameterValueException",
    )
    assert_lambda_error(
        raw(gw, "POST", INVOKE.format("warm"), **{"X-Amz-Log-Type": "Bogus"}),
        400,
        "InvalidParameterValueException",
    )
    assert_lambda_error(
        raw(gw, "POST", INVOKE.format("warm"), b'{"a": NaN}'), 400, "InvalidRequestContentException"
    )
    assert invoke(gw, "function:warm")["Body"]["event"] == {}
    missing = raw(gw, "POST", INVOKE.format("nothing-here"))
    body = assert_lambda_error(missing, 404, "ResourceNotFoundException")
    assert f":lambda:{REGION}:" in body["Message"]


# 9.


def test_a_reservation_that_does_not_fit_is_reported_as_not_in_force(gw: DevGateway) -> None:
    client = gw.client()
    held = client.get_function_concurrency(FunctionName="reserved-a")
    assert held["ReservedConcurrentExecutions"] == 5
    refused = client.get_function_concurrency(FunctionName="reserved-b")
    assert "ReservedConcurrentExecutions" not in refused
    assert "Concurrency" not in client.get_function(FunctionName="reserved-b")
    assert "reserved-b: reservedConcurrency 5 does not fit" in gw.log()
