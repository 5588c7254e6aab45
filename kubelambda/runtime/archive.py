"""Code archives and file trees, checked before anything is written: the digest of a set of
files, zip vetting (names, links) without extracting, safe extraction, and merging layers.

Pure but for the files they read and write; `code.CodeCache` calls them on its threads, and
configurations are vetted with them when they are loaded (`vet_code`), long before an invoke.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import posixpath
import shutil
import stat
import zipfile
from collections.abc import Iterable
from pathlib import Path

from kubelambda.runtime.spec import CodeRef

MAX_UNZIPPED_BYTES = 262_144_000  # Lambda's limit for code plus layers, unzipped


class CodeError(ValueError):
    """Code or a layer could not be resolved; the message says which and why."""


def tree_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """The sha256 (hex) of a set of files, independent of order and timestamps."""
    digest = hashlib.sha256()
    for name, data in sorted(files):
        encoded = name.encode()
        digest.update(len(encoded).to_bytes(4, "big") + encoded)
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def folder_files(folder: Path) -> list[tuple[str, bytes]]:
    """A folder's files as (relative posix name, content), skipping __pycache__."""
    found = []
    for path in sorted(folder.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        found.append((path.relative_to(folder).as_posix(), path.read_bytes()))
    return found


def safe_name(name: str) -> str:
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith("/") or ".." in parts:
        raise CodeError(f"file name {name!r} must be a relative path inside the code folder")
    return "/".join(p for p in parts if p not in ("", "."))


def _link_escapes(name: str, link: str) -> bool:
    """Whether a link entry `name` -> `link` points outside the root, as written (absolute, or
    more `..` than it is deep). The extraction checks the real resolution as well."""
    if not link or link.startswith("/") or "\0" in link:
        return True
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
    return resolved == ".." or resolved.startswith("../")


def _inside(root: str, path: str) -> bool:
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def vet_zip(data: bytes | Path) -> None:
    """Refuse, without extracting, a zip whose entries leave the code root: unsafe names, links
    that point outside it, and entries written through a link. Cheap: it reads the directory
    (and the links' targets), so it runs when a configuration is loaded, not at its invoke."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except zipfile.BadZipFile as exc:
        raise CodeError(f"code is not a valid zip archive: {exc}") from exc
    with archive:
        links: set[str] = set()
        for info in archive.infolist():
            name = safe_name(info.filename)
            parents = name.split("/")[:-1]
            through = next(
                (
                    "/".join(parents[: i + 1])
                    for i in range(len(parents))
                    if "/".join(parents[: i + 1]) in links
                ),
                None,
            )
            if through is not None:
                raise CodeError(f"zip entry {name!r} is written through the link {through!r}")
            if stat.S_ISLNK(info.external_attr >> 16):
                target = archive.read(info).decode(errors="replace")
                if _link_escapes(name, target):
                    raise CodeError(
                        f"zip entry {name!r} is a link to {target!r}, outside the code folder"
                    )
                links.add(name)


def vet_code(ref: CodeRef) -> None:
    """The checks that need no download, for when a configuration is loaded: inline names, and
    a local or base64 zip's entries (`vet_zip`). URLs are checked when they are extracted."""
    if ref.inline is not None:
        for name in ref.inline:
            safe_name(name)
    elif ref.zip_base64 is not None:
        try:
            vet_zip(base64.b64decode(ref.zip_base64, validate=True))
        except (binascii.Error, ValueError) as exc:
            if isinstance(exc, CodeError):
                raise
            raise CodeError(f"zipBase64 code is not valid base64: {exc}") from exc
    elif ref.path is not None and Path(ref.path).is_file():
        vet_zip(Path(ref.path))


def extract_zip(data: bytes | Path, target: Path) -> None:
    """Extract a zip into `target`, keeping Unix modes and symlinks, refusing unsafe names.

    Nothing is ever created or written outside `target`: a link must resolve inside it (when
    created, and again once every entry exists, since a later link can change what an earlier
    one resolves to), and no entry is written through a link that leads out of it."""
    vet_zip(data)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except zipfile.BadZipFile as exc:
        raise CodeError(f"code is not a valid zip archive: {exc}") from exc
    root = os.path.realpath(target)
    created: list[Path] = []
    with archive:
        total = sum(info.file_size for info in archive.infolist())
        if total > MAX_UNZIPPED_BYTES:
            raise CodeError(f"unzipped code is {total} bytes, over {MAX_UNZIPPED_BYTES}")
        for info in archive.infolist():
            name = safe_name(info.filename)
            if not name:
                continue
            dest = target / name
            mode = info.external_attr >> 16
            if not _inside(root, str(dest.parent)) or dest.is_symlink():
                raise CodeError(f"zip entry {name!r} would be written outside the code folder")
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not _inside(root, str(dest.parent)):
                raise CodeError(f"zip entry {name!r} would be written outside the code folder")
            if stat.S_ISLNK(mode):
                os.symlink(archive.read(info).decode(), dest)
                created.append(dest)
                if not _inside(root, str(dest)):
                    raise CodeError(f"zip entry {name!r} is a link outside the code folder")
                continue
            # O_NOFOLLOW: never open through a link, whatever raced it into place.
            try:
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                raise CodeError(f"zip entry {name!r} cannot be written: {exc.strerror}") from exc
            with archive.open(info) as src, open(fd, "wb") as out:
                shutil.copyfileobj(src, out)
            os.chmod(dest, (mode & 0o777) or 0o644)
    for link in created:
        if not _inside(root, str(link)):
            raise CodeError(
                f"zip entry {link.relative_to(target).as_posix()!r} is a link outside the "
                "code folder"
            )


def merge_tree(source: Path, target: Path) -> None:
    """Copy `source` over `target` (later layers win), hard-linking files where the fs allows."""
    for root, dirs, files in os.walk(source):
        rel = Path(root).relative_to(source)
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in dirs:
            if (Path(root) / name).is_symlink():
                files.append(name)
        for name in files:
            src, dest = Path(root) / name, target / rel / name
            if dest.is_symlink() or dest.is_file():
                dest.unlink()
            if src.is_symlink():
                os.symlink(os.readlink(src), dest)
                continue
            try:
                os.link(src, dest)
            except OSError:
                shutil.copy2(src, dest)
