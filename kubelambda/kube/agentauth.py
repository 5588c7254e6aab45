"""The agents' control-API tokens: one per pod, derived from a key the operator and gateways share.

The key lives in one Secret in the release's namespace, mounted into the operator and the
gateways (the chart makes it). The operator gives each pod a random nonce (an annotation) and
the token HMAC-SHA256(key, nonce) (the agent's `KUBELAMBDA_AGENT_TOKEN`); a gateway that claims
the pod derives the same token from the annotation. No Secret is needed in function namespaces,
and a function that reads its own pod's token can drive only the agent it already runs under.
Pure, apart from reading the key file.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from kubelambda.kube.contract import AGENT_NONCE

NONCE = AGENT_NONCE


def agent_token(key: bytes, nonce: str) -> str:
    return hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()


def pod_token(key: bytes | None, nonce: str) -> str | None:
    """The token of the pod with `nonce`, for a gateway or the operator; None without a key or a
    nonce (an agent started without a token)."""
    return agent_token(key, nonce) if key and nonce else None


def read_key(path: str | None) -> bytes | None:
    """The shared key from a mounted Secret file (surrounding whitespace dropped); None: none."""
    if not path:
        return None
    key = Path(path).read_bytes().strip()
    if len(key) < 16:
        raise ValueError(f"{path}: the agent key must be at least 16 bytes")
    return key
