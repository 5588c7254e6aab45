"""`kubelambda deploy`'s packaging: deterministic zips and the code.path -> code.s3 rewrite."""

from __future__ import annotations

import hashlib
import time
import zipfile
from pathlib import Path

import pytest

from kubelambda.deploy.package import code_paths, package, with_code, zip_folder
from kubelambda.deploy.targets import DeployError, lambda_params


def test_a_folder_zips_to_the_same_digest_whatever_the_timestamps(tmp_path: Path) -> None:
    folder = tmp_path / "fn"
    (folder / "lib").mkdir(parents=True)
    (folder / "app.py").write_text("x = 1\n")
    (folder / "lib" / "run.sh").write_text("#!/bin/sh\n")
    (folder / "lib" / "run.sh").chmod(0o755)
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"junk")
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    assert zip_folder(folder, first) == 2
    later = time.time() + 3600
    import os

    os.utime(folder / "app.py", (later, later))
    zip_folder(folder, second)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(first) == digest(second)
    with zipfile.ZipFile(first) as archive:
        assert archive.namelist() == ["app.py", "lib/run.sh"]
        assert (archive.getinfo("lib/run.sh").external_attr >> 16) & 0o777 == 0o755


def test_a_zip_is_shipped_as_it_is_and_anything_else_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "code.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("app.py", "")
    assert package(source, tmp_path).path == source
    (tmp_path / "notes.txt").write_text("no")
    with pytest.raises(ValueError):
        package(tmp_path / "notes.txt", tmp_path)


def test_code_paths_and_their_replacement() -> None:
    doc = {
        "kind": "Version",
        "spec": {
            "functionName": "f",
            "function": {
                "runtime": "python3.12",
                "code": {"path": "./f"},
                "layers": [{"name": "utils", "path": "./utils.zip"}, {"url": "https://x/y.zip"}],
            },
        },
    }
    assert code_paths(doc) == [
        ("spec.function.code", "./f"),
        ("spec.function.layers[0]", "./utils.zip"),
    ]
    s3 = {"s3": {"bucket": "code", "key": "sha256/a.zip"}, "sha256": "a" * 64}
    out = with_code(doc, {"spec.function.code": s3, "spec.function.layers[0]": s3})
    assert out["spec"]["function"]["code"] == s3
    assert out["spec"]["function"]["layers"][0] == {"name": "utils", **s3}
    assert doc["spec"]["function"]["code"] == {"path": "./f"}  # the input is left alone
    assert code_paths({"kind": "Alias", "spec": {}}) == []


def test_a_spec_as_lambda_members() -> None:
    params = lambda_params(
        {
            "runtime": "python3.12",
            "handler": "app.handler",
            "memorySize": 256,
            "environment": {"variables": {"AA": "1"}},
            "loggingConfig": {"logFormat": "JSON"},
        }
    )
    assert params == {
        "Runtime": "python3.12",
        "Handler": "app.handler",
        "MemorySize": 256,
        "Environment": {"Variables": {"AA": "1"}},
        "LoggingConfig": {"LogFormat": "JSON"},
    }
    with pytest.raises(DeployError):
        lambda_params({"layers": [{"path": "./x"}]})
