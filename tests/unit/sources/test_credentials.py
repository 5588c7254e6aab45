"""A poller's credentials: the keys file it reads and the signature the gateway checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelambda.gateway.auth import sigv4
from kubelambda.sources.credentials import BearerToken, CredentialsError, read_sigv4_key

KEYS = """keys:
  - accessKeyId: AKIAPOLLEREXAMPLE001
    secretAccessKey: poller-secret-key-0123456789
    user: kubelambda-admin
"""


def test_the_first_key_signs_what_the_gateway_verifies(tmp_path: Path) -> None:
    (tmp_path / "keys.yaml").write_text(KEYS)
    key = read_sigv4_key(tmp_path / "keys.yaml", "us-east-1")
    url = "http://127.0.0.1:9000/2015-03-31/functions/hello/invocations?Qualifier=live"
    body = b'{"Records": []}'
    headers = key.headers("POST", url, body, {"Content-Type": "application/json"})
    received = [("host", "127.0.0.1:9000"), *headers.items()]
    request = sigv4.SignedRequest(
        "POST", "/2015-03-31/functions/hello/invocations", "Qualifier=live", received, body
    )
    secrets = {"AKIAPOLLEREXAMPLE001": "poller-secret-key-0123456789"}
    assert sigv4.verify(request, secrets.get).access_key == "AKIAPOLLEREXAMPLE001"
    tampered = sigv4.SignedRequest(
        "POST", "/2015-03-31/functions/hello/invocations", "Qualifier=live", received, b"{}"
    )
    with pytest.raises(Exception, match="signature"):
        sigv4.verify(tampered, secrets.get)


def test_a_keys_file_without_a_usable_key_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text("keys: []\n")
    with pytest.raises(CredentialsError, match=r"keys\[0\].accessKeyId"):
        read_sigv4_key(path, "us-east-1")
    path.write_text("keys: [{accessKeyId: AKIAPOLLEREXAMPLE001}]\n")
    with pytest.raises(CredentialsError, match=r"keys\[0\].secretAccessKey"):
        read_sigv4_key(path, "us-east-1")
    with pytest.raises(CredentialsError, match=r"missing\.yaml"):
        read_sigv4_key(tmp_path / "missing.yaml", "us-east-1")


def test_a_bearer_token_is_read_on_every_call(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    bearer = BearerToken(token)
    assert bearer.headers("POST", "http://x/", b"", {})["Authorization"] == "Bearer one"
    token.write_text("two")  # the kubelet rotated it
    assert bearer.headers("POST", "http://x/", b"", {})["Authorization"] == "Bearer two"
