"""Issue 19 on the real control plane: `kubelambda gateway --cluster`'s Lambda control API as a
front end to the resources, code in a real S3-compatible code store, and `kubelambda deploy`.

One stack serves the module: the real operator and a cluster gateway started with the
--code-store-* flags (its keys in its environment, as the chart passes them), a versitygw
server (built by `make tools` from its Go module) on loopback as the store, and the store's keys
in a Secret of the namespace, where the gateway reads them for the agents (`credentialsSecret`).
The pipelines are the same files the dev-mode tests run (tests/component/control/scripts/).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.lambda_stack import LambdaStack, running_stack
from tests.component.control.flows import boto3_flow, check_boto3_flow, check_cli_flow, cli_flow
from tests.component.s3server import ACCESS_KEY, SECRET_KEY, S3Server

BUCKET = "kubelambda-code"
SECRET = "code-store"
ROLE = "arn:aws:iam::000000000000:role/lambda-role"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KUBELAMBDA = str(Path(sys.executable).parent / "kubelambda")


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def store_flags(s3: S3Server) -> list[str]:
    return [
        f"--code-store-bucket={BUCKET}",
        f"--code-store-endpoint={s3.url}",
        f"--code-store-secret={SECRET}",
    ]


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster,
    lambda_crds: list[Any],
    tmp_path_factory: pytest.TempPathFactory,
    s3: S3Server,
) -> Iterator[LambdaStack]:
    workdir = tmp_path_factory.mktemp("stack")
    flags = tuple(store_flags(s3))
    with running_stack(cluster, workdir, gateway_flags=flags, gateway_env=s3.env) as running:
        running.core.create_namespaced_secret(
            running.ns,
            {
                "metadata": {"name": SECRET},
                "stringData": {
                    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                },
            },
        )
        yield running


def url(stack: LambdaStack) -> str:
    return stack.gateways["gw-a"][1]


@pytest.mark.timeout(600)  # 400 alias draws and four waits, through pods on a loaded machine
def test_boto3_pipeline(stack: LambdaStack, tmp_path: Path) -> None:
    try:
        check_boto3_flow(boto3_flow(url(stack), "pipe-boto", tmp_path))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from None


# ~25 `aws` processes: a minute or more on a loaded 2-core machine, so `make test-slow` runs it,
# as it runs the dev-mode one; the boto3 pipeline covers the same steps in `make test`.
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_aws_cli_pipeline(stack: LambdaStack, tmp_path: Path) -> None:
    try:
        check_cli_flow(cli_flow(url(stack), "pipe-cli", tmp_path))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from None


def test_an_api_created_function_is_a_resource_with_its_code_in_the_store(
    stack: LambdaStack, s3: S3Server
) -> None:
    data = _zip({"app.py": "def handler(event, context):\n    return 'stored'\n"})
    client = stack.lambda_client()
    created = client.create_function(
        FunctionName="stored",
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": data},
    )
    digest = hashlib.sha256(data).hexdigest()
    assert created["CodeSha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert created["CodeSize"] == len(data)
    spec = stack.get("functions", "stored")["spec"]  # what `kubectl get fn stored` shows
    assert spec["code"]["sha256"] == digest
    assert spec["code"]["s3"] == {
        "bucket": BUCKET,
        "key": f"sha256/{digest}.zip",
        "endpoint": s3.url,
        "region": "us-east-1",
        "credentialsSecret": SECRET,
    }
    stored = s3.client().get_object(Bucket=BUCKET, Key=f"sha256/{digest}.zip")["Body"].read()
    assert stored == data
    client.get_waiter("function_active").wait(
        FunctionName="stored", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    assert json.loads(client.invoke(FunctionName="stored")["Payload"].read()) == "stored"
    listed = {f["FunctionName"] for f in client.list_functions()["Functions"]}
    on_the_server = {
        item["metadata"]["name"]
        for item in stack.custom.list_namespaced_custom_object(
            "kubelambda.dev", "v1alpha1", stack.ns, "functions"
        )["items"]
    }
    assert "stored" in listed and listed == on_the_server


@pytest.mark.timeout(600)
def test_a_30_mb_zip_deploys_through_the_code_store_and_runs(stack: LambdaStack) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(
            "app.py", "import os\n\ndef handler(e, c):\n    return os.path.getsize('blob.bin')\n"
        )
        archive.writestr("blob.bin", os.urandom(30 * 1024 * 1024))  # incompressible
    data = buffer.getvalue()
    client = stack.lambda_client()
    created = client.create_function(
        FunctionName="big",
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": data},
        Timeout=60,
    )
    assert created["CodeSize"] == len(data) > 30 * 1024 * 1024
    assert stack.get("functions", "big")["spec"]["code"]["s3"]["bucket"] == BUCKET
    client.get_waiter("function_active").wait(
        FunctionName="big", WaiterConfig={"Delay": 1, "MaxAttempts": 180}
    )
    answer = client.invoke(FunctionName="big", Payload=b"{}")
    assert "FunctionError" not in answer, stack.logs()
    assert json.loads(answer["Payload"].read()) == 30 * 1024 * 1024


@pytest.mark.timeout(900)
def test_kubelambda_deploy_examples_makes_every_example_active(
    stack: LambdaStack, s3: S3Server, tmp_path: Path
) -> None:
    # The examples name `namespace: default`; this stack's operator serves its own namespace,
    # so the copy names that one (nothing else in the files changes).
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns(".kubelambda"))
    for manifest in folder.rglob("*.yaml"):
        text = manifest.read_text()
        manifest.write_text(re.sub(r"(?m)^(\s*namespace:) default$", rf"\1 {stack.ns}", text))
    functions = sorted(
        doc["metadata"]["name"]
        for manifest in folder.rglob("*.yaml")
        for doc in _documents(manifest)
        if doc.get("kind") == "Function"
    )
    assert functions, "the examples define functions"
    env = {**stack.env(), **s3.env}
    done = subprocess.run(
        [KUBELAMBDA, "deploy", str(folder), f"--namespace={stack.ns}", *store_flags(s3)],
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{stack.logs()}"
    lines = done.stdout.splitlines()
    for name in functions:
        assert f"Function/{name}: Active" in lines, done.stdout
        spec = stack.get("functions", name)["spec"]
        assert "path" not in spec["code"] and spec["code"]["s3"]["bucket"] == BUCKET, spec
        stack.wait_state("functions", name, "Active")
    for name in functions:  # and the gateway serves each (its catalog says Active)
        stack.wait_servable(name, timeout=60)
    client = stack.lambda_client()
    answer = client.invoke(FunctionName="hello", Payload=b'{"name": "deploy"}')
    assert json.loads(answer["Payload"].read())["message"] == "Hello, deploy!"


def _documents(path: Path) -> list[dict[str, Any]]:
    import yaml

    return [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()
