"""Code resolution: digests, zip extraction, sources, layer merging."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from kubelambda.runtime.archive import CodeError, extract_zip, merge_tree, tree_digest
from kubelambda.runtime.code import CodeCache
from kubelambda.runtime.spec import CodeRef, EnvironmentSpec


def _zip(files: dict[str, tuple[str, int]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, (content, mode) in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (mode | 0o100000) << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def test_tree_digest_ignores_order() -> None:
    a = tree_digest([("a", b"1"), ("b", b"2")])
    assert a == tree_digest([("b", b"2"), ("a", b"1")])
    assert a != tree_digest([("a", b"1"), ("b", b"3")])
    assert tree_digest([("ab", b"")]) != tree_digest([("a", b"b")])


def test_extract_keeps_modes_and_refuses_escapes(tmp_path: Path) -> None:
    extract_zip(_zip({"bin/run": ("#!/bin/sh\n", 0o755), "a.txt": ("x", 0o644)}), tmp_path / "x")
    assert os.access(tmp_path / "x" / "bin" / "run", os.X_OK)
    assert not os.access(tmp_path / "x" / "a.txt", os.X_OK)
    with pytest.raises(CodeError, match="relative path"):
        extract_zip(_zip({"../evil": ("x", 0o644)}), tmp_path / "y")
    with pytest.raises(CodeError, match="relative path"):
        extract_zip(_zip({"/abs": ("x", 0o644)}), tmp_path / "z")
    with pytest.raises(CodeError, match="not a valid zip"):
        extract_zip(b"nope", tmp_path / "w")


def test_merge_tree_later_wins(tmp_path: Path) -> None:
    first, second, target = tmp_path / "1", tmp_path / "2", tmp_path / "t"
    (first / "python").mkdir(parents=True)
    (second / "python").mkdir(parents=True)
    (first / "python" / "m.py").write_text("1")
    (first / "python" / "only.py").write_text("1")
    (second / "python" / "m.py").write_text("2")
    merge_tree(first, target)
    merge_tree(second, target)
    assert (target / "python" / "m.py").read_text() == "2"
    assert (target / "python" / "only.py").read_text() == "1"


def test_sources(tmp_path: Path) -> None:
    async def scenario() -> None:
        cache = CodeCache(tmp_path / "cache")
        inline = CodeRef(inline={"app.py": "x", "bootstrap": "#!/bin/sh\n"})
        folder = await cache.resolve(inline)
        assert (folder / "app.py").read_text() == "x" and os.access(folder / "bootstrap", os.X_OK)
        assert await cache.resolve(inline) == folder  # same digest, same folder
        digest = tree_digest([("app.py", b"x"), ("bootstrap", b"#!/bin/sh\n")])
        assert await cache.resolve(CodeRef(inline=inline.inline, sha256=digest)) == folder
        with pytest.raises(CodeError, match=f"expected {'b' * 64}, got {digest}"):
            await cache.resolve(
                CodeRef(inline={"app.py": "x", "bootstrap": "#!/bin/sh\n"}, sha256="b" * 64)
            )
        data = _zip({"app.py": ("y", 0o644)})
        zipped = await cache.resolve(CodeRef(zip_base64=base64.b64encode(data).decode()))
        assert zipped.name == hashlib.sha256(data).hexdigest()
        with pytest.raises(CodeError, match="not valid base64"):
            await cache.resolve(CodeRef(zip_base64="***"))

    asyncio.run(scenario())


def test_code_ref_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        CodeRef()
    with pytest.raises(ValueError, match="exactly one"):
        CodeRef(inline={"a": "b"}, path="/x")
    with pytest.raises(ValueError, match="http"):
        CodeRef(url="ftp://x/y.zip", sha256="a" * 64)


def test_spec_serializes_camel_case() -> None:
    spec = EnvironmentSpec(
        function_name="f",
        function_arn="arn",
        runtime="python3.12",
        handler="a.b",
        code=CodeRef(zip_base64="AA=="),
        memory_size=256,
    )
    data = spec.model_dump(by_alias=True, mode="json")
    assert data["functionName"] == "f" and data["memorySize"] == 256
    assert data["code"]["zipBase64"] == "AA=="
    assert EnvironmentSpec.model_validate(data) == spec


def test_local_folder_digest_is_memoized_but_sees_edits(tmp_path: Path) -> None:
    folder = tmp_path / "fn"
    folder.mkdir()
    (folder / "app.py").write_text("v1")
    digest = tree_digest([("app.py", b"v1")])

    async def scenario() -> None:
        cache = CodeCache(tmp_path / "cache")
        ref = CodeRef(path=str(folder), sha256=digest)
        assert await cache.resolve(ref) == folder.resolve()
        assert await cache.resolve(ref) == folder.resolve()  # from the memo
        (folder / "app.py").write_text("v2!")  # an edit changes size and mtime
        with pytest.raises(CodeError, match="sha256 mismatch"):
            await cache.resolve(ref)
        archive = tmp_path / "code.zip"
        archive.write_bytes(_zip({"app.py": ("z", 0o644)}))
        first = await cache.resolve(CodeRef(path=str(archive)))
        assert first == await cache.resolve(CodeRef(path=str(archive)))
        assert (first / "app.py").read_text() == "z"

    asyncio.run(scenario())


async def test_specialization_caps_the_runtime_at_the_functions_memory_size(tmp_path: Path) -> None:
    """Issue 12, defect 5: whatever the environment (a 512 MB generic pod, a dev process), the
    release carries the function's own memorySize, and the runtime container's shim is told to
    cap its address space at it (the process shim gets a cgroup or RLIMIT_AS from it)."""
    from kubelambda.runtime.handshake import release_document, release_files, release_frame
    from kubelambda.runtime.limits import address_space
    from kubelambda.runtime.prepare import SharedDirs, prepare

    spec = EnvironmentSpec(
        function_name="small",
        function_arn="arn:aws:lambda:us-east-1:000000000000:function:default.small",
        runtime="python3.12",
        handler="app.handler",
        memory_size=128,
        code=CodeRef(inline={"app.py": "def handler(e, c):\n    return 1\n"}),
    )
    cache = CodeCache(tmp_path / "cache")
    local = await prepare(spec, cache=cache, work_dir=tmp_path / "w", runtime_api="127.0.0.1:1")
    assert local.message["memory_mb"] == 128
    shared = SharedDirs(tmp_path / "hs", tmp_path / "task", tmp_path / "layers")
    pod = await prepare(spec, cache=cache, work_dir=tmp_path / "w2", runtime_api="x", shared=shared)
    assert pod.message["memory_mb"] == 128
    # What the `sh` shim sources, and what the Python shim's child applies (from its file or
    # from the frame on its connection): the same cap.
    files = release_files(pod.message)
    assert f"ulimit -v {address_space(128) // 1024}" in files["release.env"]
    document = release_document(pod.message)
    assert document["address_space"] == address_space(128) // 1024 * 1024
    assert json.loads(files["release.json"]) == document
    frame = release_frame(pod.message)
    assert json.loads(frame[4:]) == document and int.from_bytes(frame[:4], "big") == len(frame) - 4
