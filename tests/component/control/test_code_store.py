"""The code store against a real S3-compatible server (versitygw): uploads keyed by sha256, the
agent's streaming download with its digest check, and `code.s3` manifests in dev mode."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from kubelambda.runtime.code import CodeCache, CodeError
from kubelambda.runtime.s3 import S3Endpoint
from kubelambda.runtime.spec import CodeRef, S3Ref
from kubelambda.serving.codestore import CodeBucket, S3CodeStore
from tests.component.control.conftest import dev_gateway
from tests.component.control.helpers import handler_zip, lambda_client, zipped
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
