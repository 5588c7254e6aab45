"""`kubelambda deploy examples/` and `kubelambda publish` against a dev gateway: the folder
shipped through the control API answers exactly as the same folder served directly."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.component.control.conftest import dev_gateway
from tests.component.control.helpers import lambda_client
from tests.component.gateway.conftest import KUBELAMBDA, DevGateway
from tests.component.s3server import S3Server

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def kubelambda(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBELAMBDA, *args], capture_output=True, text=True, timeout=300, check=False
    )


def answers(client: Any) -> dict[str, Any]:
    out = {}
    for name, qualifier in [
        ("hello", "$LATEST"),
        ("greeter", "$LATEST"),
        ("greeter", "1"),
        ("greeter", "2"),
    ]:
        reply = client.invoke(FunctionName=name, Qualifier=qualifier, Payload=b'{"name": "k"}')
        body = json.loads(reply["Payload"].read())
        body.pop("requestId", None)  # differs per call
        out[f"{name}:{qualifier}"] = body
    return out


def test_deploy_examples_to_a_gateway_then_publish(tmp_path: Path, s3: S3Server) -> None:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns(".kubelambda"))
    reference = DevGateway(folder, "--no-reload", "--state-dir", str(tmp_path / "ref-state"))
    target = dev_gateway(tmp_path / "empty", s3)
    try:
        done = kubelambda("deploy", str(folder), "--endpoint-url", target.url)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert "Function/hello: Active" in lines and "Function/greeter: Active" in lines
        assert any(line.startswith("Function/hello: code ./hello: 1 file(s)") for line in lines)
        assert "Alias/greeter-live: created" in lines
        client = lambda_client(target.url)
        assert answers(client) == answers(lambda_client(reference.url))
        alias = client.get_alias(FunctionName="greeter", Name="live")
        assert alias["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.1}}

        again = kubelambda("deploy", str(folder), "--endpoint-url", target.url)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "Function/hello: unchanged" in again.stdout.splitlines()
        assert "Version/greeter-1: unchanged" in again.stdout.splitlines()

        published = kubelambda("publish", "hello:live", "--endpoint-url", target.url)
        assert published.returncode == 0, published.stderr
        assert published.stdout.strip() == "hello: version 1 (Active); alias live created -> 1"
        reply = client.invoke(FunctionName="hello:live", Payload=b"{}")
        assert reply["ExecutedVersion"] == "1"
    finally:
        target.stop()
        reference.stop()
