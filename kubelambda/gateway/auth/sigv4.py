"""AWS Signature Version 4, verified on the server side (service `lambda`). Pure.

The canonical request is built the way botocore's `SigV4Auth` builds it (the unit tests sign
with botocore and verify here): the raw path with dot segments removed, URI-encoded again; the
raw query pairs sorted as sent; the signed headers lower-cased, trimmed, repeated values
comma-joined; the body's SHA-256 unless X-Amz-Content-SHA256 names it. A timestamp more than
five minutes from the server's clock is refused, as AWS does.

It runs on every signed request, so the common case is kept short (`bench/README.md`, "Invoke
auth"): what repeats across requests is worked out once (derived keys, canonical paths and
queries, signed-header lists, timestamps), never whether a signature was valid.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote

from multidict import CIMultiDict, CIMultiDictProxy

from kubelambda.api.common import is_digits
from kubelambda.gateway.auth.errors import invalid_signature, missing_token, unrecognized_client

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = 300.0  # seconds
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_FIELDS = re.compile(r"(Credential|SignedHeaders|Signature)=([^,\s]+)")
# The header as botocore and the AWS CLI write it, each field in the characters it may hold
# there: what this matches, the general parse below reads the same way; the rest goes to it.
_USUAL = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([0-9A-Za-z]+)/([0-9]{8})/([0-9a-z-]+)/([0-9a-z-]+)"
    r"/aws4_request, ?SignedHeaders=([0-9a-z;_.-]+), ?Signature=([0-9a-f]+)"
)
# The headers as received: aiohttp's (case-insensitive, repeated names kept), or pairs.
Headers = CIMultiDictProxy[str] | CIMultiDict[str] | Iterable[tuple[str, str]]


# Tuples, not dataclasses: one of each is built per signed request, and a frozen dataclass
# costs several times a tuple to construct.
class SignedRequest(NamedTuple):
    """What the server received, as the signature covers it."""

    method: str
    raw_path: str  # as sent, still percent-encoded, without the query
    raw_query: str
    headers: Headers  # every header as received, names repeated
    body: bytes


class Authorization(NamedTuple):
    access_key: str
    date: str  # YYYYMMDD of the credential scope
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def parse_authorization(value: str | None) -> Authorization:
    """The fields of an `Authorization: AWS4-HMAC-SHA256 ...` header."""
    if not value:
        raise missing_token()
    usual = _USUAL.fullmatch(value)
    if usual is not None:  # the same fields as below, in one step
        access_key, date, region, service, signed_headers, signature = usual.groups()
        signed_names = tuple(signed_headers.split(";"))
        return Authorization(access_key, date, region, service, signed_names, signature)
    return _parse_fields(value)


def _parse_fields(value: str) -> Authorization:
    """`parse_authorization` for any spacing and order of the fields."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise invalid_signature(f"Unsupported signature algorithm {algorithm!r}")
    fields = dict(_FIELDS.findall(rest))
    try:
        credential = fields["Credential"].split("/")
        access_key, date, region, service, terminal = credential
        signed = tuple(fields["SignedHeaders"].split(";"))
        signature = fields["Signature"]
    except (KeyError, ValueError):
        raise invalid_signature(
            "Authorization header requires Credential, SignedHeaders and Signature"
        ) from None
    if terminal != "aws4_request":
        raise invalid_signature("Credential should be scoped with a valid terminator")
    return Authorization(access_key, date, region, service, signed, signature)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 with empty segments dropped too (AWS collapses `//`), as botocore's
    normalize_url_path does; an empty path is `/`."""
    if not path:
        return "/"
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    head = "/" if path.startswith("/") else ""
    tail = "/" if path.endswith("/") and kept else ""
    return head + "/".join(kept) + tail


@lru_cache(maxsize=256)
def canonical_query(raw_query: str) -> str:
    if not raw_query:
        return ""
    pairs = [pair.partition("=") for pair in raw_query.split("&")]
    return "&".join(f"{k}={v}" for k, v in sorted((k, v) for k, _, v in pairs))


@lru_cache(maxsize=256)
def canonical_path(raw_path: str) -> str:
    """A path's canonical form; a gateway sees few distinct paths, so each is worked out once."""
    return quote(remove_dot_segments(raw_path), safe="/~")


@lru_cache(maxsize=64)
def _signed_names(signed_headers: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    wanted = tuple(sorted(set(signed_headers)))
    return wanted, ";".join(wanted)


def canonical_request(request: SignedRequest, signed_headers: Sequence[str]) -> str:
    """The canonical request, only the signed headers looked up and normalized."""
    return _canonical(request, tuple(signed_headers))[0]


def _multi(headers: Headers) -> CIMultiDictProxy[str] | CIMultiDict[str]:
    if isinstance(headers, (CIMultiDictProxy, CIMultiDict)):
        return headers
    return CIMultiDict(headers)


@lru_cache(maxsize=256)
def _head(method: str, raw_path: str, raw_query: str) -> str:
    """The canonical request's first three lines (a gateway sees few distinct ones)."""
    return f"{method.upper()}\n{canonical_path(raw_path)}\n{canonical_query(raw_query)}\n"


def _canonical(request: SignedRequest, signed_headers: tuple[str, ...]) -> tuple[str, str | None]:
    """The canonical request and the X-Amz-Content-SHA256 the request declares (if any)."""
    wanted, names = _signed_names(signed_headers)
    headers = _multi(request.headers)
    parts = [_head(request.method, request.raw_path, request.raw_query)]
    for name in wanted:
        values = headers.getall(name, ())
        if len(values) == 1:
            parts.append(f"{name}:{' '.join(values[0].split())}\n")
        else:
            parts.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}\n")
    declared = headers.get("x-amz-content-sha256")
    payload_hash = declared or hashlib.sha256(request.body).hexdigest()
    parts.append(f"\n{names}\n{payload_hash}")
    return "".join(parts), declared


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


@lru_cache(maxsize=1024)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The derived key; it changes once a day per key, so it is cached."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


@lru_cache(maxsize=1024)
def _signer(secret: str, date: str, region: str, service: str) -> hmac.HMAC:
    """An HMAC keyed with the derived key, never fed: each signature is computed on a copy.
    With OpenSSL 3, the one-shot `hmac.digest` looks the algorithm up by name on every call
    (several times the cost of the hash itself, more with cold caches); a copy does not."""
    return hmac.new(signing_key(secret, date, region, service), digestmod="sha256")


def signature(secret: str, date: str, region: str, service: str, to_sign: str) -> str:
    """The hex signature of `to_sign` under the key derived for that scope."""
    mac = _signer(secret, date, region, service).copy()
    mac.update(to_sign.encode())
    return mac.hexdigest()


def _header(request: SignedRequest, name: str) -> str | None:
    return _multi(request.headers).get(name)


@lru_cache(maxsize=64)
def _epoch(timestamp: str) -> float:
    """`YYYYMMDDTHHMMSSZ` as seconds since the epoch (strptime is ten times slower)."""
    if len(timestamp) != 16 or timestamp[8] != "T" or timestamp[15] != "Z":
        raise ValueError(timestamp)
    digits = timestamp[:8] + timestamp[9:15]
    if not is_digits(digits):
        raise ValueError(timestamp)
    fields = (digits[0:4], digits[4:6], digits[6:8], digits[8:10], digits[10:12], digits[12:14])
    year, month, day, hour, minute, second = (int(f) for f in fields)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError(timestamp)
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def check_time(timestamp: str, now: float) -> None:
    try:
        signed_at = _epoch(timestamp)
    except ValueError:
        raise invalid_signature(f"Invalid X-Amz-Date {timestamp!r}") from None
    if now - MAX_SKEW <= signed_at <= now + MAX_SKEW:
        return
    stamp = time.strftime(_TIMESTAMP, time.gmtime(now))
    if signed_at < now - MAX_SKEW:
        earliest = time.strftime(_TIMESTAMP, time.gmtime(now - MAX_SKEW))
        raise invalid_signature(
            f"Signature expired: {timestamp} is now earlier than {earliest} ({stamp} - 5 min.)"
        )
    latest = time.strftime(_TIMESTAMP, time.gmtime(now + MAX_SKEW))
    raise invalid_signature(
        f"Signature not yet current: {timestamp} is still later than {latest} ({stamp} + 5 min.)"
    )


def check_claim(
    auth: Authorization,
    timestamp: str | None,
    secret: str | None,
    *,
    service: str = "lambda",
    now: float | None = None,
) -> str:
    """What can be refused before the body is read: an unknown key (`secret` None), the
    timestamp, the scope and the signed headers. Returns the checked timestamp."""
    if secret is None:
        raise unrecognized_client()
    if timestamp is None:
        raise invalid_signature("Authorization requires an X-Amz-Date header")
    check_time(timestamp, time.time() if now is None else now)
    if auth.service != service or timestamp[:8] != auth.date:
        raise invalid_signature(f"Credential should be scoped to a valid service: {service}")
    if "host" not in auth.signed_headers:
        raise invalid_signature("'Host' must be a signed header")
    return timestamp


def check_signature(
    request: SignedRequest, auth: Authorization, secret: str, timestamp: str
) -> None:
    """The signature over the whole request (after `check_claim`); InvalidSignature otherwise."""
    canonical, declared = _canonical(request, auth.signed_headers)
    if declared not in (None, UNSIGNED_PAYLOAD) and (
        declared != hashlib.sha256(request.body).hexdigest()
    ):
        raise invalid_signature("The provided X-Amz-Content-SHA256 does not match the body")
    to_sign = string_to_sign(timestamp, auth.scope, canonical)
    expected = signature(secret, auth.date, auth.region, auth.service, to_sign)
    if not hmac.compare_digest(expected, auth.signature):
        raise invalid_signature()


def verify(
    request: SignedRequest,
    secret_of: Callable[[str], str | None],
    *,
    service: str = "lambda",
    now: float | None = None,
    parsed: Authorization | None = None,
) -> Authorization:
    """The request's verified authorization; raises the AWS error that applies.

    `secret_of` maps an access key id to its secret (None: unknown key); `parsed` is the
    Authorization header when the caller has parsed it already.
    """
    auth = parsed or parse_authorization(_header(request, "authorization"))
    secret = secret_of(auth.access_key)
    timestamp = check_claim(auth, _header(request, "x-amz-date"), secret, service=service, now=now)
    assert secret is not None  # check_claim refuses an unknown key
    check_signature(request, auth, secret, timestamp)
    return auth
