"""The code store against a real S3-compatible server (versitygw): uploads keyed by sha256, the
agent's streaming download with its digest check, and `code.s3` manifests in dev mode."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from kubelambda.runtime.archive import CodeError
from kubelambda.runtime.code import CodeCache
from kubelambda.runtime.s3 import S3Endpoint
from kubelambda.runtime.spec import CodeRef, S3Ref
from kubelambda.serving.codestore import CodeBucket, S3CodeStore
from tests.component.control.conftest import dev_gateway
from tests.component.control.helpers import handler_zip, lambda_client, zipped
from tests.component.gateway.conftest import DevGateway
from tests.component.s3server import ACCESS_KEY, SECRET_KEY, S3Server


def endpoint(s3: S3Server) -> S3Endpoint:
    return S3Endpoint(s3.url, "us-east-1", ACCESS_KEY, SECRET_KEY)


async def test_uploads_are_keyed_by_sha256_and_idempotent(s3: S3Server, tmp_path: Path) -> None:
    store = S3CodeStore(CodeBucket("code-store", endpoint(s3), credentials_secret="s3-keys"))
    data = zipped({"app.py": "x = 1\n"})
    path = tmp_path / "code.zip"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    first = await store.put_file(path)
    second = await store.put_file(path)
    assert first == second
    assert (first.sha256, first.size) == (sha, len(data))
    assert first.code == {
        "s3": {
            "bucket": "code-store",
            "key": f"sha256/{sha}.zip",
            "endpoint": s3.url,
            "region": "us-east-1",
            "credentialsSecret": "s3-keys",
        },
        "sha256": sha,
    }
    stored = s3.client().get_object(Bucket="code-store", Key=f"sha256/{sha}.zip")["Body"].read()
    assert stored == data


async def test_the_agent_downloads_s3_code_and_checks_the_digest(
    s3: S3Server, tmp_path: Path
) -> None:
    data = zipped({"app.py": "def handler(e, c):\n    return 1\n", "lib/data.txt": "d" * 5000})
    sha = hashlib.sha256(data).hexdigest()
    client = s3.client()
    client.create_bucket(Bucket="agent-code")
    client.put_object(Bucket="agent-code", Key="fn.zip", Body=data)
    where = S3Ref(
        bucket="agent-code",
        key="fn.zip",
        endpoint=s3.url,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    cache = CodeCache(tmp_path / "cache")
    folder = await cache.resolve(CodeRef(s3=where, sha256=sha))
    assert (folder / "lib" / "data.txt").read_text() == "d" * 5000
    assert await cache.resolve(CodeRef(s3=where, sha256=sha)) == folder
    assert cache.downloads == 1  # cached by digest
    with pytest.raises(CodeError, match="sha256 mismatch"):
        await cache.resolve(CodeRef(s3=where, sha256="0" * 64))
    wrong = where.model_copy(update={"secret_access_key": "wrong"})
    with pytest.raises(CodeError, match="could not be read"):
        await cache.resolve(CodeRef(s3=wrong, sha256="1" * 64))


def test_a_code_s3_manifest_runs_in_dev_mode(s3: S3Server, tmp_path: Path) -> None:
    data = handler_zip("s3 manifest")
    sha = hashlib.sha256(data).hexdigest()
    client = s3.client()
    client.create_bucket(Bucket="manifest-code")
    client.put_object(Bucket="manifest-code", Key="hello.zip", Body=data)
    folder = tmp_path / "fns"
    folder.mkdir()
    manifest = {
        "apiVersion": "kubelambda.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "hello-s3"},
        "spec": {
            "runtime": "python3.12",
            "handler": "app.handler",
            "code": {
                "s3": {"bucket": "manifest-code", "key": "hello.zip", "endpoint": s3.url},
                "sha256": sha,
            },
        },
    }
    (folder / "hello.yaml").write_text(yaml.safe_dump(manifest))
    dev = dev_gateway(folder, s3)  # the environment's AWS_* variables are the keys
    try:
        answer = lambda_client(dev.url).invoke(FunctionName="hello-s3", Payload=b"{}")
        assert json.loads(answer["Payload"].read()) == "s3 manifest"
    finally:
        dev.stop()


def test_a_30_mb_zip_deploys_through_s3_and_runs(control: DevGateway, s3: S3Server) -> None:
    import io
    import os
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(
            "app.py", "import os\n\ndef handler(e, c):\n    return os.path.getsize('blob.bin')\n"
        )
        archive.writestr("blob.bin", os.urandom(30 * 1024 * 1024))  # incompressible
    data = buffer.getvalue()
    client = s3.client()
    client.create_bucket(Bucket="big-code")
    client.put_object(Bucket="big-code", Key="big.zip", Body=data)
    lam = lambda_client(control.url)
    created = lam.create_function(
        FunctionName="big",
        Runtime="python3.12",
        Role="arn:aws:iam::000000000000:role/r",
        Handler="app.handler",
        Code={"S3Bucket": "big-code", "S3Key": "big.zip"},
        Timeout=30,
    )
    assert created["CodeSize"] == len(data) > 30 * 1024 * 1024
    answer = lam.invoke(FunctionName="big", Payload=b"{}")
    assert json.loads(answer["Payload"].read()) == 30 * 1024 * 1024
