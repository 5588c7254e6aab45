"""Resolving `environment.secretKeyRefs` to values, for the spec an environment starts with.

A `SecretLookup` answers (namespace, Secret name, key) with the value or None: dev mode's reads
the `--secrets` file (`kubelambda.dev.secrets`), a cluster gateway's the Kubernetes Secrets it
fetched (`kubelambda.kube.secrets`). The values go into `EnvironmentSpec.secrets`,
which no dump, repr, log line, status or API response ever shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from kubelambda.api.function import SecretKeyRef
from kubelambda.serving.errors import LambdaError

SecretLookup = Callable[[str, str, str], str | None]


def missing_secret(variable: str, namespace: str, ref: SecretKeyRef, source: str) -> str:
    return (
        f"spec.environment.secretKeyRefs.{variable}: Secret {namespace}/{ref.name} has no key "
        f"{ref.key!r} in {source}"
    )


def unresolved(
    namespace: str, refs: Mapping[str, SecretKeyRef], lookup: SecretLookup, source: str
) -> list[str]:
    """A line for each reference the lookup cannot answer (empty: all resolve)."""
    return [
        missing_secret(variable, namespace, ref, source)
        for variable, ref in sorted(refs.items())
        if lookup(namespace, ref.name, ref.key) is None
    ]


def resolve_secrets(
    function: str,
    namespace: str,
    refs: Mapping[str, SecretKeyRef],
    lookup: SecretLookup | None,
    source: str = "the gateway's Secrets",
) -> dict[str, str]:
    """variable -> value; Lambda's InvalidParameterValueException naming the field otherwise."""
    if not refs:
        return {}
    if lookup is None:
        raise LambdaError(
            "InvalidParameterValueException",
            f"{function}: spec.environment.secretKeyRefs: no secret source here (dev mode: "
            "`kubelambda dev --secrets FILE`; provisioned concurrency in a cluster is not "
            "served with Secret references yet: their values travel only from the gateway)",
        )
    values: dict[str, str] = {}
    for variable, ref in refs.items():
        value = lookup(namespace, ref.name, ref.key)
        if value is None:
            problem = missing_secret(variable, namespace, ref, source)
            raise LambdaError("InvalidParameterValueException", f"{function}: {problem}")
        values[variable] = value
    return values
