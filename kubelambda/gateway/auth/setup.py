"""Building the guard a gateway runs with, from its flags (`--auth`, `--keys`, a Secret).

Dev mode decides with the keys' own rules unless `kubernetes` is among the modes; a cluster
always asks a SubjectAccessReview, so RBAC is the one permission system.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kubelambda.gateway.auth.guard import Authorizer, Guard, KeyFinder, KeyRules, StaticKeys
from kubelambda.gateway.auth.keys import KeysError, parse_keys
from kubelambda.gateway.auth.kubernetes import AccessReviews, SecretKeys, TokenReviews
from kubelambda.kube.client import KubeApi


def read_keys_file(path: Path) -> StaticKeys:
    """Raises KeysError for a file that cannot be read or is invalid."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise KeysError(f"--keys {path}: {exc.strerror}") from None
    return StaticKeys(parse_keys(text, f"--keys {path}").by_id())


def build_guard(
    modes: frozenset[str],
    *,
    region: str,
    default_namespace: str,
    cluster: bool,
    api: Callable[[], KubeApi],
    keys_file: Path | None = None,
    secret: tuple[str, str] | None = None,
) -> Guard | None:
    """None for `--auth none`. Raises KeysError (no or bad keys) and ValueError."""
    if not modes:
        return None
    keys: KeyFinder | None = None
    if "sigv4" in modes:
        if keys_file is not None:
            keys = read_keys_file(keys_file)
        elif secret is not None:
            keys = SecretKeys(api(), *secret)
        else:
            raise KeysError("--auth sigv4 needs keys: --keys FILE (or --sigv4-secret in a cluster)")
    tokens = TokenReviews(api()) if "kubernetes" in modes else None
    authorizer: Authorizer
    if cluster or "kubernetes" in modes:
        authorizer = AccessReviews(api())
    else:
        assert keys is not None
        authorizer = KeyRules(keys)
    return Guard(
        modes,
        authorizer,
        store_authorizes=cluster,
        keys=keys,
        tokens=tokens,
        region=region,
        default_namespace=default_namespace,
    )
