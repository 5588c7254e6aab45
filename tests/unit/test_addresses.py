"""IPv6 pod addresses in URLs (issue 16, point 11): bracketed, zones percent-encoded; IPv4
addresses and names unchanged. Each URL parses back to the address it was built from."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from kubelambda.addresses import host_port, http_url, url_host


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("10.244.1.7", "10.244.1.7"),
        ("fd00:10:244::7", "[fd00:10:244::7]"),
        ("::1", "[::1]"),
        ("[fd00::7]", "[fd00::7]"),  # already bracketed: not twice
        ("fe80::1%eth0", "[fe80::1%25eth0]"),
        ("agent.team-a.svc", "agent.team-a.svc"),
        ("localhost", "localhost"),
    ],
)
def test_url_host(host: str, expected: str) -> None:
    assert url_host(host) == expected


def test_urls_parse_back_to_their_address_and_port() -> None:
    for host in ("10.244.1.7", "fd00:10:244::7", "::"):
        url = http_url(host, 8080, "/kubelambda/v1/state")
        parts = urlsplit(url)
        assert parts.hostname == host and parts.port == 8080, url
        assert parts.path == "/kubelambda/v1/state"
    assert host_port("fd00::7", 9001) == "[fd00::7]:9001"
    assert host_port("127.0.0.1", 9001) == "127.0.0.1:9001"
