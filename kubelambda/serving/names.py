"""Parsing the FunctionName of an API call: plain names, `ns.name`, ARNs and qualifiers.

Accepted forms follow the pattern of botocore's `FunctionName` shape (a qualifier may follow any
of them after a colon, or come as `Qualifier`):

- `hello`                                        -> the gateway's default namespace
- `team-a.hello`                                 -> namespace `team-a`
- `function:hello` (the resource part of an ARN)
- `arn:aws:lambda:REGION:ACCOUNT:function:hello` -> the default namespace (account ignored)
- `arn:aws:lambda:REGION:ACCOUNT:function:team-a.hello`
- `ACCOUNT:function:hello` (a partial ARN)

A name over 140 characters, a qualifier that breaks the model's pattern or length, and an empty
`Qualifier=` are refused with Lambda's 400 validation message, as Lambda refuses them (not 404).

ARNs we generate use the account `000000000000` and put the namespace in the function name
(`ns.name`), so an ARN read back from GetFunction can be used to invoke.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from kubelambda.api.common import LATEST
from kubelambda.serving.errors import LambdaError, bad_parameter

ACCOUNT = "000000000000"
MAX_NAME = 140  # Lambda's limit for a full function ARN (a bare name is at most 64)
MAX_BARE_NAME = 64
MAX_QUALIFIER = 128
_NAME = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_QUALIFIER_RE = re.compile(r"^[a-zA-Z0-9$_-]+$")
_FORMS = re.compile(
    r"^(?:arn:(?:aws[a-zA-Z-]*)?:lambda:)?(?:[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d:)?"
    r"(?:\d{12}:)?(?:function:)?"
    rf"(?:(?P<ns>{_NAME})\.)?(?P<name>{_NAME})(?::(?P<qualifier>[^:]*))?$"
)


@dataclass(frozen=True)
class FunctionRef:
    namespace: str
    name: str
    qualifier: str | None  # None: unqualified, which means $LATEST for invokes

    @property
    def effective_qualifier(self) -> str:
        return self.qualifier or LATEST


def validation_error(value: str, member: str, constraint: str) -> LambdaError:
    """Lambda's wording for a parameter that breaks its service model's constraints."""
    return bad_parameter(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {constraint}"
    )


def check_qualifier(value: str, member: str = "qualifier") -> str:
    """A qualifier as the model allows it (1-128 characters of [a-zA-Z0-9$_-])."""
    if not value:
        raise validation_error(value, member, "Member must have length greater than or equal to 1")
    if len(value) > MAX_QUALIFIER:
        raise validation_error(
            value, member, f"Member must have length less than or equal to {MAX_QUALIFIER}"
        )
    if not _QUALIFIER_RE.match(value):
        raise validation_error(
            value, member, "Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)"
        )
    return value


def parse_function_name(raw: str, qualifier: str | None, default_namespace: str) -> FunctionRef:
    """`qualifier` is the `Qualifier` parameter: None when absent (an empty one is refused)."""
    if len(raw) > MAX_NAME:
        raise validation_error(
            raw, "functionName", f"Member must have length less than or equal to {MAX_NAME}"
        )
    if qualifier is not None:
        check_qualifier(qualifier)
    match = _FORMS.match(raw)
    if match is None:
        raise validation_error(
            raw,
            "functionName",
            "use NAME, NAMESPACE.NAME, function:NAME or a function ARN, optionally with :QUALIFIER",
        )
    if len(match.group("name")) > MAX_BARE_NAME:
        raise validation_error(
            raw, "functionName", f"a function name is at most {MAX_BARE_NAME} characters"
        )
    in_name = match.group("qualifier")
    if in_name is not None:
        check_qualifier(in_name, "functionName")
    if in_name and qualifier and in_name != qualifier:
        raise LambdaError(
            "InvalidParameterValueException",
            "The derived qualifier from the function name does not match the specified qualifier.",
        )
    return FunctionRef(
        namespace=match.group("ns") or default_namespace,
        name=match.group("name"),
        qualifier=in_name or qualifier or None,
    )


# The same function names come again and again: parse each once (FunctionRef is frozen; an
# invalid name raises, and lru_cache keeps no exception).
cached_function_ref = lru_cache(maxsize=4096)(parse_function_name)


def function_arn(region: str, namespace: str, name: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{namespace}.{name}"
    return f"{arn}:{qualifier}" if qualifier else arn
