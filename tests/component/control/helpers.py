"""Zips and clients for the control API tests."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from typing import Any

import boto3
from botocore.config import Config

ROLE = "arn:aws:iam::000000000000:role/lambda-role"


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def handler_zip(answer: str) -> bytes:
    return zipped({"app.py": f"def handler(event, context):\n    return {answer!r}\n"})


def lambda_sha(data: bytes) -> str:
    """CodeSha256 as Lambda reports it: the base64 of the zip's sha256."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def lambda_client(url: str, *, validate: bool = True) -> Any:
    """`validate=False`: botocore sends what it is given, so the gateway's own checks answer."""
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(
            retries={"total_max_attempts": 1}, read_timeout=120, parameter_validation=validate
        ),
    )


def create(client: Any, name: str, data: bytes, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = client.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": data},
        **extra,
    )
    return found


def error_of(exc: Any) -> tuple[int, str, str]:
    """(status, code, message) of a botocore ClientError."""
    response = exc.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"].get("Message", ""),
    )
