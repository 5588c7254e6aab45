"""Resolve code and layers (CodeRef) into folders on this machine, cached by sha256.

- inline files are written once per digest (a runtime container's task root gets them
  directly, `write_inline`); a local folder is used in place (dev mode edits show
  on the next specialization); a zip (local, base64 or downloaded) is extracted once per sha256.
- a given sha256 is checked for every source; a URL requires one and a mismatch is refused with
  both digests named. A cached sha256 is never downloaded again. A download is streamed to a
  file, hashed on the way, and extracted from the file, so memory never holds a whole zip.
- layers are merged in order into one per-environment /opt folder (hard links where possible).
The archive work itself (vetting, safe extraction, merging, digests) is `archive.py`'s. Task
folders in the cache are shared between environments and treated as read-only, like /var/task.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from kubelambda.runtime.archive import (
    MAX_UNZIPPED_BYTES,
    CodeError,
    extract_zip,
    folder_files,
    merge_tree,
    safe_name,
    tree_digest,
)
from kubelambda.runtime.spec import CodeRef, S3Ref

MAX_DOWNLOAD_BYTES = MAX_UNZIPPED_BYTES


def _check(ref: CodeRef, actual: str) -> None:
    if ref.sha256 is not None and ref.sha256.lower() != actual:
        raise CodeError(
            f"{ref.describe()}: sha256 mismatch: expected {ref.sha256.lower()}, got {actual}; "
            "the code was refused"
        )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _file_sha256(path: Path) -> str:
    with path.open("rb") as file:  # streamed: a zip is never read whole into memory
        return hashlib.file_digest(file, "sha256").hexdigest()


def _signature(path: Path) -> tuple[object, ...]:
    """What changes when a file or folder's content may have changed (names, sizes, mtimes)."""
    if path.is_file():
        info = path.stat()
        return (info.st_ino, info.st_size, info.st_mtime_ns)
    entries = []
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            info = os.stat(os.path.join(root, name))
            entries.append((root, name, info.st_size, info.st_mtime_ns))
    return tuple(sorted(entries))


def _checked_inline(ref: CodeRef, files: dict[str, str]) -> list[tuple[str, bytes]]:
    named = [(safe_name(name), content.encode()) for name, content in files.items()]
    _check(ref, tree_digest(named))
    return named


def _write_files(named: list[tuple[str, bytes]], folder: Path) -> None:
    for name, data in named:
        dest = folder / name
        if "/" in name:
            dest.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            # Files with a shebang are executables (a custom runtime's inline `bootstrap`).
            os.fchmod(fd, 0o755 if data.startswith(b"#!") else 0o644)
            _write_all(fd, data)
        finally:
            os.close(fd)


class CodeCache:
    """Task and layer folders by digest under `root`; safe to share between environments."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, asyncio.Lock] = {}
        self._digests: dict[str, tuple[tuple[object, ...], str]] = {}
        self.downloads = 0  # how many URLs were fetched (the cache's effect, for tests)

    async def resolve(self, ref: CodeRef) -> Path:
        """A folder holding the code `ref` names."""
        if ref.inline is not None:
            return self._inline(ref, ref.inline)
        if ref.path is not None:
            return await self._path(ref, ref.path)
        if ref.zip_base64 is not None:
            try:
                data = base64.b64decode(ref.zip_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise CodeError(f"zipBase64 code is not valid base64: {exc}") from exc
            return await self._zip(ref, data)
        if ref.image is not None:  # only a runtime container can run an image
            raise CodeError(f"image {ref.image} is not code this agent can fetch")
        if ref.s3 is not None:
            assert ref.sha256 is not None  # the model requires it with s3
            return await self._s3(ref, ref.s3, ref.sha256.lower())
        assert ref.url is not None and ref.sha256 is not None  # the model guarantees both
        return await self._url(ref, ref.url, ref.sha256.lower())

    async def install_layers(self, layers: Sequence[CodeRef], opt_dir: Path) -> None:
        """Extract `layers` in order into `opt_dir`, as Lambda does into /opt."""
        await asyncio.to_thread(opt_dir.mkdir, parents=True, exist_ok=True)
        for index, layer in enumerate(layers):
            try:
                folder = await self.resolve(layer)
            except CodeError as exc:
                raise CodeError(f"layer {index + 1}: {exc}") from exc
            await asyncio.to_thread(merge_tree, folder, opt_dir)

    def _inline(self, ref: CodeRef, files: dict[str, str]) -> Path:
        named = _checked_inline(ref, files)
        final = self.root / "tree" / tree_digest(named)
        if final.is_dir():
            return final
        staging = self._staging()
        _write_files(named, staging)
        return self._publish(staging, final)

    @staticmethod
    def write_inline(ref: CodeRef, folder: Path) -> None:
        """Write inline code straight into `folder`, not through the cache: a runtime
        container's task root is filled once, and a copy out of the cache doubled the writes
        on the cold start's path."""
        assert ref.inline is not None
        _write_files(_checked_inline(ref, ref.inline), folder)

    async def _path(self, ref: CodeRef, name: str) -> Path:
        return await asyncio.to_thread(self._local, ref, name)

    def _local(self, ref: CodeRef, name: str) -> Path:
        """A local folder (checked, used in place) or a local zip (extracted once per digest)."""
        path = Path(name).expanduser().resolve()
        if path.is_dir():
            if ref.sha256 is not None:
                _check(ref, self._digest(path, lambda: tree_digest(folder_files(path))))
            return path
        if not path.is_file():
            raise CodeError(f"code path {path} does not exist")
        digest = self._digest(path, lambda: _file_sha256(path))
        _check(ref, digest)
        final = self.root / "zip" / digest
        if not final.is_dir():
            staging = self._staging()
            self._extract(path, staging)
            self._publish(staging, final)
        return final

    def _digest(self, path: Path, compute: Callable[[], str]) -> str:
        """The content digest of a local path, recomputed only when its signature changed
        (so a big code folder is not hashed again for every environment)."""
        signature = _signature(path)
        known = self._digests.get(str(path))
        if known is not None and known[0] == signature:
            return known[1]
        digest = compute()
        self._digests[str(path)] = (signature, digest)
        return digest

    async def _zip(self, ref: CodeRef, data: bytes) -> Path:
        digest = hashlib.sha256(data).hexdigest()
        _check(ref, digest)
        final = self.root / "zip" / digest
        if final.is_dir():
            return final
        async with self._lock(digest):
            if not final.is_dir():
                staging = self._staging()
                await asyncio.to_thread(self._extract, data, staging)
                self._publish(staging, final)
        return final

    async def _url(self, ref: CodeRef, url: str, sha256: str) -> Path:
        final = self.root / "zip" / sha256
        if final.is_dir():
            return final
        async with self._lock(sha256):
            if final.is_dir():
                return final
            # Streamed to a file and extracted from it: the agent's memory never holds the zip
            # (a sidecar sized for the agent, not for the code, would be OOMKilled).
            (self.root / "staging").mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.root / "staging", suffix=".zip")
            download = Path(name)
            try:
                try:
                    actual = await self._download(url, fd)
                finally:
                    os.close(fd)
                if actual != sha256:
                    raise CodeError(
                        f"code from {url}: sha256 mismatch: expected {sha256}, got {actual}; "
                        "the download was refused"
                    )
                staging = self._staging()
                await asyncio.to_thread(self._extract, download, staging)
            finally:
                await asyncio.to_thread(download.unlink, missing_ok=True)
            return self._publish(staging, final)

    async def _s3(self, ref: CodeRef, s3: S3Ref, sha256: str) -> Path:
        """A zip from an S3-compatible bucket, streamed to disk with its digest checked on the
        way, extracted once per sha256."""
        from kubelambda.runtime.s3 import S3Endpoint, S3Error, download

        final = self.root / "zip" / sha256
        if final.is_dir():
            return final
        async with self._lock(sha256):
            if final.is_dir():
                return final
            where = S3Endpoint(
                s3.endpoint,
                s3.region or "us-east-1",
                s3.access_key_id,
                s3.secret_access_key,
                s3.session_token,
            )
            staging = self._staging()
            archive = staging.with_suffix(".zip")
            self.downloads += 1
            try:
                actual = await asyncio.to_thread(
                    download,
                    where,
                    s3.bucket,
                    s3.key,
                    archive,
                    version_id=s3.version_id,
                    limit=MAX_DOWNLOAD_BYTES,
                )
                if actual != sha256:
                    raise CodeError(
                        f"code from {s3.describe()}: sha256 mismatch: expected {sha256}, got "
                        f"{actual}; the download was refused"
                    )
                await asyncio.to_thread(extract_zip, archive, staging)
            except S3Error as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise CodeError(f"code from {exc}") from exc
            except CodeError:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            finally:
                archive.unlink(missing_ok=True)
            return self._publish(staging, final)

    async def _download(self, url: str, fd: int) -> str:
        """Stream `url` into the file `fd`; the sha256 (hex) of what was written."""
        import aiohttp  # only URL sources need the client

        self.downloads += 1
        timeout = aiohttp.ClientTimeout(total=300, sock_connect=10)
        digest = hashlib.sha256()
        size = 0
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url) as response,
            ):
                if response.status != 200:
                    raise CodeError(f"code from {url}: HTTP {response.status}")
                async for chunk in response.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD_BYTES:
                        raise CodeError(f"code from {url} is over {MAX_DOWNLOAD_BYTES} bytes")
                    digest.update(chunk)
                    _write_all(fd, chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CodeError(f"code from {url} could not be downloaded: {exc!r}") from exc
        return digest.hexdigest()

    @staticmethod
    def _extract(data: bytes | Path, staging: Path) -> None:
        """Extract into a staging folder; a refused archive leaves nothing behind."""
        try:
            extract_zip(data, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _staging(self) -> Path:
        (self.root / "staging").mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.root / "staging"))

    @staticmethod
    def _publish(staging: Path, final: Path) -> Path:
        """Move a finished folder into place atomically; a concurrent twin may have won."""
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(final)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
        return final
