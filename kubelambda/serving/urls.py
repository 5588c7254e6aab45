"""Where a function URL lives: `<scheme>://<function>.<namespace>.<domain>[:port]/`. Pure.

The operator writes the URL to `status.url`, GetFunctionUrlConfig returns it and the gateway
routes a request by its Host header back to the function; all three use this one module, so
the URL handed out is the URL served. The path form `/urls/<namespace>/<function>/...` serves
setups without wildcard DNS. The flags that spell URLs are declared here once, for the
gateway, dev mode and the operator alike.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

DEV_DOMAIN = "lambda-url.localhost"  # browsers and curl resolve *.localhost to loopback
PATH_PREFIX = "/urls/"
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class UrlDomain:
    """How function URLs are spelled: the domain under which each gets its own host."""

    domain: str = DEV_DOMAIN
    scheme: str = "http"
    port: int | None = None  # None: the scheme's default port, not written in URLs

    def url(self, namespace: str, function: str) -> str:
        default = {"http": 80, "https": 443}.get(self.scheme)
        port = "" if self.port is None or self.port == default else f":{self.port}"
        return f"{self.scheme}://{function}.{namespace}.{self.domain}{port}/"

    def route_host(self, host: str | None) -> tuple[str, str] | None:
        """(namespace, function) of a Host header under this domain, else None."""
        if not host:
            return None
        name = host.strip().lower()
        if name.startswith("["):  # an IPv6 literal is never a function's host
            return None
        name = name.rsplit(":", 1)[0] if ":" in name else name
        suffix = "." + self.domain.lower()
        if not name.endswith(suffix):
            return None
        labels = name[: -len(suffix)].split(".")
        if len(labels) != 2 or not all(_LABEL.match(label) for label in labels):
            return None
        function, namespace = labels
        return namespace, function


def route_path(path: str) -> tuple[str, str, str] | None:
    """(namespace, function, rawPath) of the path form `/urls/NS/FN/REST`, else None.

    The prefix is removed from the event's rawPath: `/urls/ns/fn` and `/urls/ns/fn/` are `/`.
    """
    if not path.startswith(PATH_PREFIX):
        return None
    namespace, _, rest = path[len(PATH_PREFIX) :].partition("/")
    function, slash, tail = rest.partition("/")
    if not (_LABEL.match(namespace) and _LABEL.match(function)):
        return None
    return namespace, function, "/" + tail if slash else "/"


def add_url_flags(parser: argparse.ArgumentParser) -> None:
    urls = parser.add_argument_group("function URLs (http://FUNCTION.NAMESPACE.DOMAIN[:PORT]/)")
    urls.add_argument(
        "--url-domain",
        default=DEV_DOMAIN,
        help=f"the domain each function URL is a host under ({DEV_DOMAIN}); the path form "
        "/urls/NAMESPACE/FUNCTION/ works without wildcard DNS",
    )
    urls.add_argument("--url-scheme", default="http", choices=("http", "https"), help="(http)")
    urls.add_argument(
        "--url-port",
        type=int,
        default=None,
        help="the port written in URLs (dev: the port served; cluster: none, the scheme's)",
    )


def url_domain(args: argparse.Namespace, port: int | None = None) -> UrlDomain:
    return UrlDomain(args.url_domain, args.url_scheme, args.url_port or port)
