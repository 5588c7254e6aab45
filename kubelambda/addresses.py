"""`host:port` and http URLs from an address, IPv6 literals in brackets (RFC 3986). Pure.

A pod IP on an IPv6 or dual-stack cluster is `fd00::1`; `http://fd00::1:8080` is not a URL.
Every URL or `host:port` built from an address goes through here (the gateway's agent URLs,
the gateway's own URL, the Runtime API address a runtime is given). A scoped link-local
address keeps its zone, percent-encoded as RFC 6874 asks.
"""

from __future__ import annotations

import ipaddress


def url_host(host: str) -> str:
    """`host` as the host part of a URL: an IPv6 literal bracketed, anything else as is."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return host  # a name, or an IPv4 literal written oddly: not ours to rewrite
    if address.version == 4:
        return bare
    plain, _, zone = bare.partition("%")
    return f"[{plain}%25{zone}]" if zone else f"[{plain}]"


def host_port(host: str, port: int) -> str:
    """`host:port` (AWS_LAMBDA_RUNTIME_API's form), an IPv6 literal bracketed."""
    return f"{url_host(host)}:{port}"


def http_url(host: str, port: int, path: str = "") -> str:
    """`http://host:port/path`, an IPv6 literal bracketed."""
    return f"http://{host_port(host, port)}{path}"
