"""SigV4 keys: the YAML of `--keys FILE` (dev mode) and of the gateway's Secret (cluster).

    keys:
      - accessKeyId: AKIDEXAMPLE
        secretAccessKey: ...
        user: alice                 # the caller's name: in AccessDeniedException, and the
        groups: [team-a]            #   user and groups a SubjectAccessReview asks about
        functions: ["default/*"]    # dev mode only: NAMESPACE/NAME globs it may use (default *)
        verbs: [invoke, get, list]  # dev mode only (default: all six; the control API's
                                    #   deploys need create, update or delete)

In a cluster, RBAC decides (the key's user and groups go to a SubjectAccessReview), and
`functions`/`verbs` are ignored.
"""

from __future__ import annotations

import fnmatch
import re
from functools import cached_property
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from kubelambda.gateway.auth.model import Identity

Verb = Literal["invoke", "get", "list", "create", "update", "delete"]
ALL_VERBS: tuple[Verb, ...] = ("invoke", "get", "list", "create", "update", "delete")


class KeysError(ValueError):
    """The keys document is not valid; the message names the field."""


class Key(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    access_key_id: str = Field(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9]+$")
    secret_access_key: str = Field(min_length=16, max_length=256)
    user: str = Field(min_length=1, max_length=253)
    groups: list[str] = Field(default_factory=list)
    functions: list[str] = Field(default_factory=lambda: ["*"])
    verbs: list[Verb] = Field(default_factory=lambda: list(ALL_VERBS))

    @field_validator("user")
    @classmethod
    def _no_system_user(cls, value: str) -> str:
        if value.startswith("system:"):
            raise ValueError("user must not be a system: user (it would act as Kubernetes itself)")
        return value

    # Worked out once per key, not per request (a key is never changed once read).
    @cached_property
    def identity(self) -> Identity:
        """Who a request signed with this key comes from."""
        return Identity(self.user, tuple(self.groups), self.access_key_id)

    @cached_property
    def verb_set(self) -> frozenset[str]:
        return frozenset(self.verbs)

    @cached_property
    def function_pattern(self) -> re.Pattern[str]:
        """The `functions` globs as one expression (fnmatch's own translation, case kept)."""
        return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in self.functions))

    def allows(self, verb: str, namespace: str, function: str | None) -> bool:
        """The dev-mode rule: the verb is granted and (for one function) a glob matches."""
        if verb not in self.verb_set:
            return False
        if function is None:
            return True
        return self.function_pattern.match(f"{namespace}/{function}") is not None


class KeySet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[Key] = Field(min_length=1)

    def by_id(self) -> dict[str, Key]:
        return {k.access_key_id: k for k in self.keys}


def parse_keys(text: str, source: str = "keys") -> KeySet:
    try:
        document = yaml.safe_load(text)
        return KeySet.model_validate(document)
    except yaml.YAMLError as exc:
        raise KeysError(f"{source}: not YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise KeysError(f"{source}: {where}: {first['msg']}") from None
