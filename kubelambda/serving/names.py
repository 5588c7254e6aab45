"""Parsing the FunctionName of an API call: plain names, `ns.name`, ARNs and qualifiers.

Accepted forms (a qualifier may follow any of them after a colon, or come as `Qualifier`):

- `hello`                                        -> the gateway's default namespace
- `team-a.hello`                                 -> namespace `team-a`
- `arn:aws:lambda:REGION:ACCOUNT:function:hello` -> the default namespace (account ignored)
- `arn:aws:lambda:REGION:ACCOUNT:function:team-a.hello`
- `ACCOUNT:function:hello` (a partial ARN)

ARNs we generate use the account `000000000000` and put the namespace in the function name
(`ns.name`), so an ARN read back from GetFunction can be used to invoke.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubelambda.api.common import LATEST
from kubelambda.serving.errors import LambdaError, bad_parameter

ACCOUNT = "000000000000"
_NAME = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_QUALIFIER = r"(\$LATEST|[a-zA-Z0-9_-]{1,128})"
_FORMS = re.compile(
    rf"^(?:arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{{12}}:function:|\d{{12}}:function:)?"
    rf"(?:(?P<ns>{_NAME})\.)?(?P<name>{_NAME})(?::(?P<qualifier>{_QUALIFIER}))?$"
)


@dataclass(frozen=True)
class FunctionRef:
    namespace: str
    name: str
    qualifier: str | None  # None: unqualified, which means $LATEST for invokes

    @property
    def effective_qualifier(self) -> str:
        return self.qualifier or LATEST


def parse_function_name(raw: str, qualifier: str | None, default_namespace: str) -> FunctionRef:
    match = _FORMS.match(raw)
    if match is None:
        raise bad_parameter(
            f"1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy "
            "constraint: use NAME, NAMESPACE.NAME or a function ARN, optionally with :QUALIFIER"
        )
    in_name = match.group("qualifier")
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


def function_arn(region: str, namespace: str, name: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{namespace}.{name}"
    return f"{arn}:{qualifier}" if qualifier else arn
