"""Who a caller is, once authenticated, and how that reads in AWS's words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubelambda.serving.names import ACCOUNT


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = ()
    access_key: str | None = None  # set for a SigV4 caller

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:user/{self.user}"

    def iam(self) -> dict[str, Any]:
        """`requestContext.authorizer.iam` of a function URL event."""
        return {
            "accessKey": self.access_key,
            "accountId": ACCOUNT,
            "callerId": self.user,
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": self.arn,
            "userId": self.user,
        }
