"""Code facts for the cluster path: what a function's code is (digest, size) and whether it can be
served. Pure.

The operator records these facts in status (codeSha256, codeSize) when it reconciles a Function
or publishes a Version; the gateway and the pool keeper check a fetched ConfigMap against them
(`codes.py`), so an agent is only ever handed the content the operator verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from kubelambda.api.function import Code, FunctionSpec
from kubelambda.runtime.archive import tree_digest

# Code sources the cluster path can serve today (see operator/README.md).
SERVED_SOURCES = ("inline", "url", "configMap", "s3")


@dataclass(frozen=True)
class CodeFacts:
    sha256: str
    size: int | None  # None when the operator does not hold the bytes (a URL)


class CodeProblem(ValueError):
    """The code cannot be served; the message starts with the field's path."""


def configmap_files(configmap: dict[str, Any]) -> dict[str, bytes]:
    """A ConfigMap's keys as file contents (data as UTF-8, binaryData decoded)."""
    files = {k: str(v).encode() for k, v in (configmap.get("data") or {}).items()}
    for key, value in (configmap.get("binaryData") or {}).items():
        try:
            files[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CodeProblem(f"binaryData.{key} of the ConfigMap is not base64: {exc}") from exc
    return files


def image_facts(spec: FunctionSpec) -> tuple[list[str], CodeFacts | None]:
    """packageType Image: the pod runs the image. Its digest (`@sha256:`) is the codeSha256,
    else the sha256 of the reference; its CMD is not read from a registry, so the handler (or a
    whole entry point) must be in imageConfig."""
    config = spec.image_config
    if config is None or not (config.command or config.entry_point):
        return [
            "spec.imageConfig: cluster mode needs imageConfig.command (the handler) or "
            "imageConfig.entryPoint: the image's own CMD is not read from its registry"
        ], None
    image = spec.code.image or ""
    _, _, digest = image.partition("@sha256:")
    return [], CodeFacts(digest or hashlib.sha256(image.encode()).hexdigest(), None)


def code_facts(code: Code, configmap: dict[str, Any] | None = None) -> CodeFacts:
    """The digest and size of a function's code, as the agent will verify them.

    inline and a ConfigMap without `key`: the tree digest of the files; a ConfigMap `key`: the
    sha256 of that zip; a URL or an S3 object: the pinned sha256 (the agent checks it when it
    downloads).
    """
    kind = code.source_kind()
    where = f"spec.code.{kind}"
    if kind not in SERVED_SOURCES:
        hint = "`kubelambda deploy` packages a folder" if kind == "path" else "not built yet"
        raise CodeProblem(
            f"{where}: not served in cluster mode ({hint}); use inline, url, configMap or s3"
        )
    if code.s3 is not None:
        # The bytes stay in the bucket: the agent checks them against sha256 as it downloads.
        if code.sha256 is None:
            raise CodeProblem(
                "spec.code.sha256: required with s3, so the download can be verified "
                "(`kubelambda deploy` and the control API set it)"
            )
        return CodeFacts(code.sha256, None)
    if code.inline is not None:
        files = {name: text.encode() for name, text in code.inline.items()}
        facts = CodeFacts(tree_digest(files.items()), sum(len(b) for b in files.values()))
    elif code.url is not None:
        assert code.sha256 is not None  # the model requires it with url
        return CodeFacts(code.sha256, None)
    else:
        assert code.config_map is not None
        if configmap is None:
            raise CodeProblem(f"{where}: ConfigMap {code.config_map.name} not found")
        files = configmap_files(configmap)
        key = code.config_map.key
        if key is not None:
            if key not in files:
                raise CodeProblem(
                    f"{where}.key: ConfigMap {code.config_map.name} has no key {key!r}"
                )
            data = files[key]
            facts = CodeFacts(hashlib.sha256(data).hexdigest(), len(data))
        else:
            if not files:
                raise CodeProblem(f"{where}: ConfigMap {code.config_map.name} is empty")
            if configmap.get("binaryData"):
                raise CodeProblem(f"{where}: binary files need `key` (the name of a zip)")
            facts = CodeFacts(tree_digest(files.items()), sum(len(b) for b in files.values()))
    if code.sha256 is not None and code.sha256 != facts.sha256:
        raise CodeProblem(
            f"spec.code.sha256: the code's digest is {facts.sha256}, not {code.sha256}"
        )
    return facts
