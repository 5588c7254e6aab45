"""The Python bootstrap's pure parts: handler loading, error JSON, context, marshalling."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from kubelambda.runtime import bootstrap
from kubelambda.runtime.bootstrap import Fault, LambdaContext


@pytest.fixture
def code_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("kl_ok", "kl_nohandler", "kl_syntax"):
        sys.modules.pop(name, None)


def test_load_handler_and_its_errors(code_dir: Path) -> None:
    (code_dir / "kl_ok.py").write_text("def go(e, c):\n    return e\n")
    (code_dir / "kl_nohandler.py").write_text("x = 1\n")
    (code_dir / "kl_syntax.py").write_text("def (:\n")
    assert bootstrap.load_handler("kl_ok.go")(5, None) == 5  # type: ignore[arg-type]
    cases = {
        "kl_missing.go": ("Runtime.ImportModuleError", "Unable to import module 'kl_missing'"),
        "kl_nohandler.go": ("Runtime.HandlerNotFound", "Handler 'go' missing on module"),
        "kl_syntax.go": ("Runtime.UserCodeSyntaxError", "Syntax error in module 'kl_syntax'"),
        "nodots": ("Runtime.MalformedHandlerName", "Bad handler 'nodots'"),
        "sys.go": ("Runtime.BuiltInModuleConflict", "Cannot use built-in module sys"),
    }
    for name, (error_type, message) in cases.items():
        with pytest.raises(Fault) as raised:
            bootstrap.load_handler(name)
        assert raised.value.error_type == error_type and message in str(raised.value)


def test_error_json_has_a_stack_trace() -> None:
    def failing() -> None:
        raise KeyError("missing")

    try:
        failing()
    except KeyError as exc:
        error = bootstrap.error_json(exc, "rid")
    assert error["errorType"] == "KeyError" and error["errorMessage"] == "'missing'"
    assert error["requestId"] == "rid"
    assert any("in failing" in frame for frame in error["stackTrace"])


def test_encode_result() -> None:
    assert bootstrap.encode_result({"a": Decimal("1.5"), "b": Decimal(2)}) == (
        b'{"a": 1.5, "b": 2}',
        "application/json",
    )
    assert bootstrap.encode_result(b"raw") == (b"raw", "application/unknown")
    with pytest.raises(Fault, match="Unable to marshal response"):
        bootstrap.encode_result({"x": object()})


def test_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
    deadline = int(time.time() * 1000) + 2000
    context = LambdaContext(
        "rid",
        deadline,
        "arn",
        {"client": {"installation_id": "i"}, "custom": {"c": 1}, "env": {"e": 2}},
        {"cognitoIdentityId": "id", "cognitoIdentityPoolId": "pool"},
    )
    assert context.function_name == "fn" and context.memory_limit_in_mb == "128"
    assert 1500 < context.get_remaining_time_in_millis() <= 2000
    assert context.client_context is not None and context.client_context.client is not None
    assert context.client_context.client.installation_id == "i"
    assert context.client_context.custom == {"c": 1}
    assert context.identity.cognito_identity_pool_id == "pool"
    expired = LambdaContext("rid", 0, "arn")
    assert expired.get_remaining_time_in_millis() == 0 and expired.client_context is None


def test_a_generator_streams_and_a_first_status_dict_is_the_http_prelude() -> None:
    import json as _json

    from kubelambda.runtime.handler_stream import HTTP_INTEGRATION, is_stream, stream_parts

    assert is_stream(iter([1])) and not is_stream([1]) and not is_stream("text")
    kind, chunks = stream_parts(iter([b"a", "b", {"c": 1}]), str)
    assert kind == "application/octet-stream"
    assert list(chunks) == [b"a", b"b", b'{"c": 1}']
    kind, chunks = stream_parts(iter([{"statusCode": 201}, "body"]), str)
    assert kind == HTTP_INTEGRATION
    head, body = list(chunks)
    assert head.endswith(b"\0" * 8) and _json.loads(head[:-8]) == {"statusCode": 201}
    assert body == b"body"
