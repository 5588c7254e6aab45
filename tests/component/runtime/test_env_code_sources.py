"""Code from a URL (sha256 verified, cached), a local zip, and refused sources."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from kubelambda.runtime.archive import CodeError
from kubelambda.runtime.provider import ProcessProvider
from kubelambda.runtime.spec import CodeRef, EnvState

from .helpers import make_request, make_spec, zip_bytes

ZIP = zip_bytes({"app.py": "def handler(event, context):\n    return 'from-url'\n"})
SHA = hashlib.sha256(ZIP).hexdigest()


@pytest.fixture
async def zip_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A local HTTP server on 127.0.0.1 serving the zip; yields its URL and the hits it got."""
    hits: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=ZIP, content_type="application/zip")

    app = web.Application()
    app.router.add_get("/code.zip", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/code.zip", hits
    finally:
        await runner.cleanup()


async def test_url_with_wrong_sha256_is_refused(
    provider: ProcessProvider, zip_server: tuple[str, list[str]]
) -> None:
    url, hits = zip_server
    wrong = "0" * 64
    env = await provider.start_environment("python3.12")
    with pytest.raises(CodeError) as refused:
        await env.specialize(make_spec(CodeRef(url=url, sha256=wrong)))
    message = str(refused.value)
    assert "sha256 mismatch" in message and wrong in message and SHA in message and url in message
    assert env.state == EnvState.WARM and env.spec is None  # still usable
    await env.specialize(make_spec(CodeRef(url=url, sha256=SHA)))
    assert json.loads((await env.invoke(make_request())).payload) == "from-url"
    assert len(hits) == 2


async def test_url_code_is_cached_by_sha256(
    provider: ProcessProvider, zip_server: tuple[str, list[str]]
) -> None:
    url, hits = zip_server
    spec = make_spec(CodeRef(url=url, sha256=SHA))
    first = await provider.start_environment("python3.12")
    second = await provider.start_environment("python3.12")
    await first.specialize(spec)
    await second.specialize(spec)
    assert len(hits) == 1 and provider.cache.downloads == 1  # the second did not download
    for env in (first, second):
        assert json.loads((await env.invoke(make_request())).payload) == "from-url"


def test_url_requires_a_sha256() -> None:
    with pytest.raises(ValueError, match="sha256 is required"):
        CodeRef(url="http://127.0.0.1:1/x.zip")


async def test_local_zip_and_folder_with_sha256(provider: ProcessProvider, tmp_path: Path) -> None:
    archive = tmp_path / "code.zip"
    archive.write_bytes(ZIP)
    env = await provider.start_environment("python3.12")
    await env.specialize(make_spec(CodeRef(path=str(archive), sha256=SHA)))
    assert json.loads((await env.invoke(make_request())).payload) == "from-url"
    folder = tmp_path / "fn"
    folder.mkdir()
    (folder / "app.py").write_text("def handler(e, c):\n    return 1\n")
    other = await provider.start_environment("python3.12")
    with pytest.raises(CodeError, match="sha256 mismatch"):
        await other.specialize(make_spec(CodeRef(path=str(folder), sha256="a" * 64)))
    with pytest.raises(CodeError, match="does not exist"):
        await other.specialize(make_spec(CodeRef(path=str(tmp_path / "nope"))))


async def test_zip_slip_is_refused(provider: ProcessProvider) -> None:
    import base64

    evil = zip_bytes({"../escape.py": "x = 1\n"})
    env = await provider.start_environment("python3.12")
    with pytest.raises(CodeError, match="relative path"):
        await env.specialize(make_spec(CodeRef(zip_base64=base64.b64encode(evil).decode())))
