"""`kubelambda dev --secrets FILE`: the values of environment.secretKeyRefs on a laptop.

Two formats, by the file's name:

- **YAML** (`.yaml`/`.yml`): Kubernetes Secret manifests (`data` base64, `stringData` plain; the
  namespace defaults to dev mode's), or one mapping `{secret-name: {key: value}}`, which serves
  every namespace. So the Secrets a cluster would hold can be reused as they are.
- **dotenv** (any other name): `KEY=value` lines, read with python-dotenv; a reference is
  matched by its key, whatever Secret it names.

The file is read again on each reload. Its values reach only the functions' environments.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

ANY_NAMESPACE = "*"


class SecretsFileError(ValueError):
    """The --secrets file cannot be used; the message names the file and the place."""


@dataclass
class SecretsFile:
    path: Path
    # (namespace or "*", Secret name or "*") -> key -> value
    values: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"--secrets {self.path}"

    def lookup(self, namespace: str, name: str, key: str) -> str | None:
        for scope in ((namespace, name), (ANY_NAMESPACE, name), (ANY_NAMESPACE, ANY_NAMESPACE)):
            found = self.values.get(scope, {}).get(key)
            if found is not None:
                return found
        return None


def _secret_manifest(
    path: Path, index: int, doc: dict[str, Any], default_ns: str
) -> tuple[tuple[str, str], dict[str, str]]:
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise SecretsFileError(f"{path}: document {index + 1}: a Secret needs metadata.name")
    values: dict[str, str] = {}
    for key, encoded in (doc.get("data") or {}).items():
        try:
            values[str(key)] = base64.b64decode(str(encoded), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise SecretsFileError(
                f"{path}: document {index + 1}: Secret {name}: data.{key} is not base64 of UTF-8"
            ) from None
    values.update({str(k): str(v) for k, v in (doc.get("stringData") or {}).items()})
    return (str(meta.get("namespace") or default_ns), name), values


def load_secrets_file(path: Path, default_namespace: str = "default") -> SecretsFile:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SecretsFileError(f"{path}: cannot be read: {exc}") from None
    found = SecretsFile(path)
    if path.suffix not in (".yaml", ".yml"):
        pairs = dotenv_values(stream=io.StringIO(text))
        found.values[(ANY_NAMESPACE, ANY_NAMESPACE)] = {
            k: v for k, v in pairs.items() if v is not None
        }
        return found
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise SecretsFileError(f"{path}: not valid YAML: {exc}") from None
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise SecretsFileError(f"{path}: document {index + 1}: expected a mapping")
        if doc.get("kind") == "Secret":
            scope, values = _secret_manifest(path, index, doc, default_namespace)
            found.values.setdefault(scope, {}).update(values)
            continue
        for name, keys in doc.items():
            if not isinstance(keys, dict):
                raise SecretsFileError(
                    f"{path}: document {index + 1}: {name}: expected a mapping of keys to values"
                )
            scope = (ANY_NAMESPACE, str(name))
            found.values.setdefault(scope, {}).update({str(k): str(v) for k, v in keys.items()})
    return found
