"""Code stores: where the control API puts zips, keyed by their sha256.

- `FolderCodeStore` (dev mode): `STATE/api/code/<sha256>.zip`; a Function references it with
  `code.path` and `sha256`. With an S3 endpoint configured it can also fetch CreateFunction's
  S3Bucket/S3Key.
- `S3CodeStore` (a cluster): one bucket of any S3-compatible endpoint (MinIO, Ceph RGW,
  SeaweedFS, AWS S3), key `sha256/<hex>.zip`; a Function references it with `code.s3` (bucket,
  key, endpoint, credentialsSecret) and `sha256`, and the agent downloads it streaming and
  checks the digest.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubelambda.runtime.s3 import S3Endpoint, S3Error, download, exists, file_sha256, upload
from kubelambda.serving.control.store import Invalid, StoredCode, StoreError


@dataclass(frozen=True)
class CodeBucket:
    """The code store's bucket, as the chart configures it."""

    bucket: str
    where: S3Endpoint
    credentials_secret: str | None = None  # the Secret agents read the keys from
    prefix: str = "sha256/"

    def key(self, sha256: str) -> str:
        return f"{self.prefix}{sha256}.zip"

    def code(self, sha256: str) -> dict[str, Any]:
        """The `code` fields of a Function whose zip is in this store."""
        s3: dict[str, Any] = {"bucket": self.bucket, "key": self.key(sha256)}
        if self.where.endpoint:
            s3["endpoint"] = self.where.endpoint
        if self.where.region:
            s3["region"] = self.where.region
        if self.credentials_secret:
            s3["credentialsSecret"] = self.credentials_secret
        return {"s3": s3, "sha256": sha256}


class FolderCodeStore:
    def __init__(self, root: Path, fetch_from: S3Endpoint | None = None) -> None:
        self.root = root
        self.fetch_from = fetch_from

    async def put_file(self, path: Path) -> StoredCode:
        return await asyncio.to_thread(self._put, path)

    def _put(self, path: Path) -> StoredCode:
        sha = file_sha256(path)
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"{sha}.zip"
        if not final.exists():
            staging = self.root / f".{sha}.tmp"
            shutil.copyfile(path, staging)
            staging.rename(final)
        return StoredCode(sha, final.stat().st_size, {"path": str(final), "sha256": sha})

    async def fetch_s3(self, bucket: str, key: str, version: str | None, into: Path) -> None:
        if self.fetch_from is None:
            raise StoreError(
                "this gateway has no S3 endpoint to read S3Bucket/S3Key from (start "
                "`kubelambda dev` with --s3-endpoint)"
            )
        await _fetch(self.fetch_from, bucket, key, version, into)


class S3CodeStore:
    def __init__(self, bucket: CodeBucket) -> None:
        self.bucket = bucket

    async def put_file(self, path: Path) -> StoredCode:
        return await asyncio.to_thread(self._put, path)

    def _put(self, path: Path) -> StoredCode:
        sha = file_sha256(path)
        key = self.bucket.key(sha)
        client = self.bucket.where.client()
        try:
            if not exists(self.bucket.where, self.bucket.bucket, key, client=client):
                upload(self.bucket.where, path, self.bucket.bucket, key, client=client)
        except S3Error as exc:
            raise StoreError(f"the code store refused the upload: {exc}") from exc
        return StoredCode(sha, path.stat().st_size, self.bucket.code(sha))

    async def fetch_s3(self, bucket: str, key: str, version: str | None, into: Path) -> None:
        await _fetch(self.bucket.where, bucket, key, version, into)


class NoCodeStore:
    """A gateway configured without a code store: code uploads are refused, saying why."""

    async def put_file(self, path: Path) -> StoredCode:
        raise Invalid(
            "this gateway has no code store: set the chart's codeStore values (an S3-compatible "
            "bucket) to upload code"
        )

    async def fetch_s3(self, bucket: str, key: str, version: str | None, into: Path) -> None:
        await self.put_file(into)


async def _fetch(where: S3Endpoint, bucket: str, key: str, version: str | None, into: Path) -> None:
    try:
        await asyncio.to_thread(download, where, bucket, key, into, version_id=version)
    except S3Error as exc:
        raise StoreError(str(exc)) from exc
