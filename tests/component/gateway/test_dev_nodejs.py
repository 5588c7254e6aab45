"""Node.js functions through `kubelambda dev` with boto3, as a Lambda developer meets them; the
ready line's command run as printed on a machine with no AWS configuration; and a runtime the
machine cannot run refused at load time."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubelambda.runtime.toolchains import find_node
from tests.component.gateway.conftest import DevGateway

MANIFESTS = """\
apiVersion: kubelambda.dev/v1alpha1
kind: Function
metadata: {name: esm}
spec:
  runtime: nodejs20.x
  handler: index.handler
  memorySize: 256
  timeout: 1
  code: {path: ./esm}
---
apiVersion: kubelambda.dev/v1alpha1
kind: Function
metadata: {name: cjs}
spec:
  runtime: nodejs22.x
  handler: app.handler
  code: {path: ./cjs}
"""
ESM = """\
export const handler = async (event, context) => {
  console.log('event', JSON.stringify(event));
  if (event.fail) throw new RangeError('out of range');
  if (event.sleep) await new Promise((resolve) => setTimeout(resolve, event.sleep));
  return {
    hello: event.name,
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    memoryLimitInMB: context.memoryLimitInMB,
    awsRequestId: context.awsRequestId,
    invokedFunctionArn: context.invokedFunctionArn,
    remaining: context.getRemainingTimeInMillis(),
    custom: context.clientContext && context.clientContext.custom,
  };
};
"""
CJS = """\
exports.handler = function (event, context, callback) {
  const waits = context.callbackWaitsForEmptyEventLoop;
  setTimeout(() => callback(null, {callback: event.name, waits}), 10);
};
"""


@pytest.fixture(scope="module")
def node_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevGateway]:
    assert find_node() is not None, "no `node` on PATH; run `make system-deps`"
    folder = tmp_path_factory.mktemp("node") / "fns"
    (folder / "esm").mkdir(parents=True)
    (folder / "cjs").mkdir()
    (folder / "functions.yaml").write_text(MANIFESTS)
    (folder / "esm" / "index.mjs").write_text(ESM)
    (folder / "cjs" / "app.js").write_text(CJS)
    dev = DevGateway(folder, "--no-reload")
    yield dev
    dev.stop()


def _tail(response: dict[str, object]) -> str:
    return base64.b64decode(str(response["LogResult"])).decode()


def test_esm_result_context_and_log_tail(node_gateway: DevGateway) -> None:
    client = node_gateway.client()
    context = base64.b64encode(json.dumps({"custom": {"team": "a"}}).encode()).decode()
    response = client.invoke(
        FunctionName="esm",
        Payload=json.dumps({"name": "node"}),
        LogType="Tail",
        ClientContext=context,
    )
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    body = json.loads(response["Payload"].read())
    assert body["hello"] == "node" and body["functionName"] == "esm"
    assert body["functionVersion"] == "$LATEST" and body["memoryLimitInMB"] == "256"
    assert body["invokedFunctionArn"].endswith(":function:default.esm")
    assert 0 < body["remaining"] <= 1000 and body["custom"] == {"team": "a"}
    tail = _tail(response).splitlines()
    request_id = body["awsRequestId"]
    assert tail[0].startswith("INIT_START") or tail[0].startswith("START")
    start = next(i for i, line in enumerate(tail) if line.startswith("START"))
    assert tail[start] == f"START RequestId: {request_id} Version: $LATEST"
    assert re.fullmatch(rf"\S+Z\t{request_id}\tINFO\tevent {{\"name\":\"node\"}}", tail[start + 1])
    assert tail[-2] == f"END RequestId: {request_id}"
    assert re.match(
        rf"REPORT RequestId: {request_id}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t"
        r"Memory Size: 256 MB\tMax Memory Used: \d+ MB",
        tail[-1],
    )


def test_error_shape_through_boto3(node_gateway: DevGateway) -> None:
    response = node_gateway.client().invoke(
        FunctionName="esm", Payload=b'{"fail": true}', LogType="Tail"
    )
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "RangeError" and error["errorMessage"] == "out of range"
    assert error["trace"][0] == "RangeError: out of range"
    assert "\tERROR\tInvoke Error \t" in _tail(response)


def test_timeout_through_boto3(node_gateway: DevGateway) -> None:
    client = node_gateway.client()
    response = client.invoke(FunctionName="esm", Payload=b'{"sleep": 5000}', LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Task timed out after 1.00 seconds")
    tail = _tail(response)
    assert "Status: timeout" in tail.splitlines()[-1]
    after = client.invoke(FunctionName="esm", Payload=b'{"name": "again"}')
    assert json.loads(after["Payload"].read())["hello"] == "again"


def test_commonjs_callback_through_boto3(node_gateway: DevGateway) -> None:
    response = node_gateway.client().invoke(FunctionName="cjs", Payload=b'{"name": "cb"}')
    assert json.loads(response["Payload"].read()) == {"callback": "cb", "waits": True}
    note = "nodejs22.x functions run on the local Node.js v"
    major = subprocess.run([str(find_node()), "--version"], capture_output=True, text=True)
    if not major.stdout.startswith("v22."):
        assert node_gateway.log().count(note) == 1


def test_ready_line_command_works_as_printed_on_a_fresh_machine(
    node_gateway: DevGateway, tmp_path: Path
) -> None:
    command = re.search(r"^ready: (.*)$", node_gateway.log(), re.M)
    assert command is not None
    # A machine with no AWS configuration: no region, no credentials, an empty home.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        command.group(1), shell=True, cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert '"StatusCode": 200' in done.stdout
    assert "--function-name cjs " in command.group(1)  # the first function, by name
    assert json.loads((tmp_path / "out.json").read_text()) == {"waits": True}


def test_a_runtime_this_machine_cannot_run_is_refused_at_load(tmp_path: Path) -> None:
    folder = tmp_path / "fns"
    (folder / "esm").mkdir(parents=True)
    (folder / "functions.yaml").write_text(MANIFESTS)
    (folder / "esm" / "index.mjs").write_text(ESM)
    (folder / "hello.yaml").write_text(
        "apiVersion: kubelambda.dev/v1alpha1\nkind: Function\nmetadata: {name: hello}\n"
        "spec: {runtime: python3.12, handler: app.handler, code: {inline: {app.py: "
        '"def handler(e, c):\\n    return 1\\n"}}}\n'
    )
    # No `node` anywhere on PATH: the gateway itself runs from its absolute path.
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin")}
    dev = DevGateway(folder, "--no-reload", env=env)
    try:
        log = dev.log()
        assert re.search(
            r"functions\.yaml: document 1: Function/esm: not served in dev mode: nodejs20\.x "
            r"needs Node\.js and no `node` is on PATH: install Node\.js 18 or later",
            log,
        )
        assert "serving 1 function(s)" in log
        client = dev.client()
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(FunctionName="esm")
        assert json.loads(client.invoke(FunctionName="hello")["Payload"].read()) == 1
    finally:
        dev.stop()
