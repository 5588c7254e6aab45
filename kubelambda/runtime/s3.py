"""S3-compatible object access for code: a client for any endpoint, streaming transfers with the
sha256 computed on the way (the agent downloads `code.s3`; the code store uploads and fetches).

boto3 is synchronous; callers run these functions in a thread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


@dataclass(frozen=True)
class S3Endpoint:
    """Where a bucket lives and how to sign for it (None keys: the default credential chain)."""

    endpoint: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            # Path-style addressing: S3-compatible servers rarely have wildcard DNS.
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )


class S3Error(Exception):
    """An object could not be read or written; the message names bucket and key."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    where: S3Endpoint,
    bucket: str,
    key: str,
    into: Path,
    *,
    version_id: str | None = None,
    limit: int | None = None,
    client: Any = None,
) -> str:
    """Streams an object into `into`; returns its sha256 (hex). Raises S3Error."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = client or where.client()
    extra = {"VersionId": version_id} if version_id else {}
    digest = hashlib.sha256()
    size = 0
    try:
        body = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"]
        with into.open("wb") as out:
            for chunk in body.iter_chunks(CHUNK):
                size += len(chunk)
                if limit is not None and size > limit:
                    raise S3Error(f"s3://{bucket}/{key} is over {limit} bytes")
                digest.update(chunk)
                out.write(chunk)
    except (BotoCoreError, ClientError) as exc:
        raise S3Error(f"s3://{bucket}/{key} could not be read: {exc}") from exc
    return digest.hexdigest()


def upload(where: S3Endpoint, path: Path, bucket: str, key: str, *, client: Any = None) -> None:
    """Uploads a file (multipart when large); creates the bucket when it does not exist."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = client or where.client()
    try:
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise
            s3.create_bucket(Bucket=bucket)
        s3.upload_file(str(path), bucket, key)
    except (BotoCoreError, ClientError) as exc:
        raise S3Error(f"s3://{bucket}/{key} could not be written: {exc}") from exc


def exists(where: S3Endpoint, bucket: str, key: str, *, client: Any = None) -> bool:
    from botocore.exceptions import ClientError

    s3 = client or where.client()
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True
