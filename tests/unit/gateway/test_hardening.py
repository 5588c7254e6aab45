"""Pure pieces of the data-plane hardening (issue 12), each written from a defect's reproduction:
names and qualifiers as Lambda validates them, one error path, strict JSON, the route table
from botocore's model, one 6 MB limit, reservations in force, zip extraction that stays inside
its root, and memory caps."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import pytest
from aiohttp import web
from botocore.loaders import Loader
from hypothesis import given
from hypothesis import strategies as st

from kubelambda.gateway.admission import ConcurrencyLedger, PoolLimits
from kubelambda.gateway.api import check_json
from kubelambda.gateway.http import protocol_error
from kubelambda.gateway.operations import add_unserved_routes, lambda_operations, route_path
from kubelambda.runtime import errors as runtime_errors
from kubelambda.runtime.archive import CodeError, extract_zip, vet_zip
from kubelambda.runtime.cgroup import cgroup2_mount, own_cgroup
from kubelambda.runtime.invocation import InvalidClientContext, decode_client_context
from kubelambda.runtime.limits import CLIENT_CONTEXT_LIMIT, MAX_RESPONSE_BYTES, SYNC_PAYLOAD_LIMIT
from kubelambda.serving.errors import ERRORS, LambdaError, as_lambda_error, too_large
from kubelambda.serving.names import FunctionRef, parse_function_name

MODEL = Loader().load_service_model("lambda", "service-2")


# 1. Client-Context


@pytest.mark.parametrize(
    "value",
    [
        "!!",  # not base64
        "bm90IGpzb24=",  # base64 of "not json"
        "WzEsMl0=",  # base64 of a JSON list
        "A" * (CLIENT_CONTEXT_LIMIT + 1),  # over Lambda's 3,583 bytes
    ],
)
def test_bad_client_context_is_a_400_invalid_request_content(value: str) -> None:
    with pytest.raises(InvalidClientContext) as refused:
        decode_client_context(value)
    error = as_lambda_error(refused.value)
    assert (error.status, error.code) == (400, "InvalidRequestContentException")


def test_client_context_limit_is_lambdas_3583_bytes() -> None:
    import base64

    def context(length: int) -> str:  # valid base64 of a JSON object, `length` characters
        value = base64.b64encode(b'{"p":"' + b"x" * (length * 3 // 4 - 8) + b'"}').decode()
        assert len(value) == length
        return value

    assert decode_client_context(context(3580)) is not None  # the longest base64 under 3,583
    for length in (3584, 7900):  # both accepted before the fix
        with pytest.raises(InvalidClientContext):
            decode_client_context(context(length))


def test_every_failure_becomes_a_modelled_lambda_error() -> None:
    for exc in (RuntimeError("boom"), CodeError("bad zip"), KeyError("x")):
        error = as_lambda_error(exc)
        assert error.code in ERRORS and error.code in MODEL["shapes"]
        assert json.loads(error.body())
    assert as_lambda_error(RuntimeError("x")).status == 500
    assert as_lambda_error(CodeError("x")).status == 400


# 8. Lambda-shaped answers


def test_function_colon_name_is_parsed_as_lambda_does() -> None:
    assert parse_function_name("function:echo", None, "d") == FunctionRef("d", "echo", None)
    assert parse_function_name("function:echo:live", None, "d") == FunctionRef("d", "echo", "live")
    assert parse_function_name("function", None, "d") == FunctionRef("d", "function", None)
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:ns.f:7"
    assert parse_function_name(arn, None, "d") == FunctionRef("ns", "f", "7")


@pytest.mark.parametrize(
    ("raw", "qualifier", "fragment"),
    [
        ("a" * 141, None, "less than or equal to 140"),
        ("a" * 65, None, "at most 64"),
        ("echo", "", "greater than or equal to 1"),
        ("echo", "a.b", "regular expression"),
        ("echo", "q" * 129, "less than or equal to 128"),
        ("echo:a.b", None, "regular expression"),
    ],
)
def test_bad_names_and_qualifiers_are_400_not_404(
    raw: str, qualifier: str | None, fragment: str
) -> None:
    with pytest.raises(LambdaError) as refused:
        parse_function_name(raw, qualifier, "default")
    assert refused.value.status == 400 and fragment in refused.value.message


@pytest.mark.parametrize("payload", [b"NaN", b'{"a": NaN}', b"[Infinity]", b"-Infinity"])
def test_nan_and_infinity_are_not_json(payload: bytes) -> None:
    with pytest.raises(LambdaError) as refused:
        check_json(payload)
    assert refused.value.code == "InvalidRequestContentException"


def _json_accepts(payload: bytes) -> bool:
    def refuse(name: str) -> None:
        raise ValueError(name)

    try:
        json.loads(payload, parse_constant=refuse)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False  # too deep for Python's parser: refused, as no Python runtime could read it
    return True


@pytest.mark.parametrize(
    "payload",
    [
        b"123456789012345678901234567890",  # past 64 bits: orjson reads a float, json an int
        b'"\\ud800"',  # a lone surrogate: orjson refuses it, json accepts it
        b"[1e999]",
        b"\xef\xbb\xbf{}",  # a byte-order mark
        b'{"a": 1, "a": 2}',
        b'{"a": "\x01"}',  # a raw control character
        b"[" * 3000 + b"]" * 3000,
    ],
)
def test_check_json_accepts_exactly_what_json_accepts(payload: bytes) -> None:
    """The orjson fast path must not change the answer: json decides what orjson refuses."""
    try:
        checked = check_json(payload)
    except LambdaError as refused:
        assert refused.code == "InvalidRequestContentException"
        assert not _json_accepts(payload)
    else:
        assert checked == payload and _json_accepts(payload)


@given(st.binary(max_size=64) | st.from_regex(rb"\A[\[\]{}\" :,0-9a-zA-Z.eE+\-\\]{0,40}\Z"))
def test_check_json_agrees_with_json_on_any_bytes(payload: bytes) -> None:
    if not payload.strip():
        assert check_json(payload) == b"{}"
        return
    try:
        check_json(payload)
    except LambdaError:
        assert not _json_accepts(payload)
    else:
        assert _json_accepts(payload)


def test_one_six_mb_limit_in_every_message() -> None:
    assert MAX_RESPONSE_BYTES == SYNC_PAYLOAD_LIMIT == 6_291_456
    body = json.loads(runtime_errors.response_too_large_body(7_000_000))
    assert "(6291456 bytes)" in body["errorMessage"]
    assert "6291456 bytes" in too_large(7_000_000, SYNC_PAYLOAD_LIMIT).message


def test_protocol_errors_are_modelled() -> None:
    for status in (400, 413, 431, 500):
        error = protocol_error(status, "bad")
        assert error.code in MODEL["shapes"] and "x-amzn-ErrorType" in error.response_headers()


def test_route_paths_follow_the_model() -> None:
    assert route_path("/2015-03-31/functions/{FunctionName}/invocations") == (
        "/2015-03-31/functions/{FunctionName}/invocations",
        (),
    )
    assert route_path("/2018-10-31/layers?find=LayerVersion") == (
        "/2018-10-31/layers",
        (("find", "LayerVersion"),),
    )
    assert route_path("/x/{Key+}") == ("/x/{Key:.+}", ())


async def _ok(request: web.Request) -> web.Response:
    return web.Response()


async def test_every_model_operation_has_a_route() -> None:
    app = web.Application()
    app.router.add_post("/2015-03-31/functions/{name}/invocations", _ok)
    added = add_unserved_routes(app.router)
    operations = lambda_operations()
    assert len(operations) == len(MODEL["operations"])
    assert added == len(operations) - 1  # all but Invoke, which is served
    app.freeze()
    for op in operations:
        path = op.path
        for label in ("FunctionName", "Name", "Resource", "UUID", "LayerName", "VersionNumber"):
            path = path.replace("{" + label + "}", "x1")
        path = __import__("re").sub(r"\{[^}]+\}", "x1", path)
        request = _request(op.method, path)
        match = await app.router.resolve(request)
        assert match.http_exception is None, f"{op.name}: {op.method} {path} has no route"


def _request(method: str, path: str) -> web.Request:
    from aiohttp.test_utils import make_mocked_request

    return make_mocked_request(method, path)


# 9. Reservations in force


def test_a_reservation_that_does_not_fit_is_not_reported_as_in_force() -> None:
    ledger = ConcurrencyLedger(PoolLimits(total=12, unreserved_floor=5))
    problems = ledger.configure({"a": 5, "b": 5})
    assert problems and "reservedConcurrency" in problems[0]
    assert ledger.reservation("a") == 5
    assert ledger.reservation("b") is None
    assert ledger.refused == {"b": 5}
    ledger.configure({"a": 5, "b": 2})
    assert ledger.refused == {} and ledger.reservation("b") == 2


def test_the_control_api_reports_the_reservation_in_force() -> None:
    from kubelambda.serving.control.base import ControlSettings

    refused = {("team", "b"): 5}
    settings = ControlSettings("us-east-1", refused_reservation=lambda ns, n: refused.get((ns, n)))
    assert settings.in_force("team", "a", 5) == 5
    assert settings.in_force("team", "b", 5) is None  # asked for, refused by admission
    assert settings.in_force("team", "b", 2) == 2  # a newer ask admission has not refused
    assert settings.in_force("team", "b", None) is None


# 2. Zip extraction stays inside its root


def _zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, data)
    return buffer.getvalue()


LINK = stat.S_IFLNK | 0o777
FILE = stat.S_IFREG | 0o644


def test_a_link_then_a_write_through_it_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    data = _zip([("lnk", str(outside).encode(), LINK), ("lnk/pwned.txt", b"x", FILE)])
    with pytest.raises(CodeError):
        vet_zip(data)
    with pytest.raises(CodeError):
        extract_zip(data, tmp_path / "root")
    assert not (outside / "pwned.txt").exists()


@pytest.mark.parametrize(
    "entries",
    [
        [("up", b"../../etc", LINK)],
        [("abs", b"/etc", LINK)],
        [("sub/up", b"../..", LINK)],
        [("a/b", b"../c", LINK), ("a/b/x", b"x", FILE)],
        [("c", b".", LINK), ("x", b"c/..", LINK)],  # escapes only once both exist
    ],
)
def test_links_out_of_the_root_are_refused(
    tmp_path: Path, entries: list[tuple[str, bytes, int]]
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(CodeError):
        extract_zip(_zip(entries), root)


def test_links_inside_the_root_are_kept(tmp_path: Path) -> None:
    data = _zip([("lib/real.py", b"X = 1\n", FILE), ("alias.py", b"lib/real.py", LINK)])
    vet_zip(data)
    extract_zip(data, tmp_path / "root")
    assert (tmp_path / "root" / "alias.py").read_text() == "X = 1\n"
    assert os.path.islink(tmp_path / "root" / "alias.py")


def test_dotdot_names_are_refused_when_vetted() -> None:
    with pytest.raises(CodeError, match="relative path"):
        vet_zip(_zip([("../evil.py", b"x", FILE)]))


# 5 and 6. cgroups


def test_cgroup2_mount_and_own_cgroup_are_parsed() -> None:
    mountinfo = (
        "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n"
        "35 25 0:31 / /sys/fs/cgroup/unified rw,relatime shared:14 - cgroup2 cgroup2 rw\n"
    )
    assert cgroup2_mount(mountinfo) == Path("/sys/fs/cgroup/unified")
    assert cgroup2_mount("1 0 0:1 / / rw - ext4 /dev/sda rw\n") is None
    assert own_cgroup("4:memory:/x\n0::/user.slice/a.scope\n") == "/user.slice/a.scope"
    assert own_cgroup("0::/\n") == "/"
    assert own_cgroup("4:memory:/x\n") is None
