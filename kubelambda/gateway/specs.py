"""From a frozen function configuration to the `EnvironmentSpec` an environment specializes with.

Dev mode resolves code paths against the manifest's folder; sources that need a cluster
(a ConfigMap, S3 with a credentials Secret, a container image) are refused with a message that
says so. Cluster mode passes a `CodeResolver` that turns a ConfigMap source into inline files or
a zip (see `kubelambda.gateway.cluster.codes`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from kubelambda.api.function import Code, Layer
from kubelambda.gateway.catalog import FunctionVersion
from kubelambda.gateway.errors import LambdaError
from kubelambda.gateway.names import function_arn
from kubelambda.gateway.secrets import SecretLookup, resolve_secrets
from kubelambda.runtime.spec import CodeRef, EnvironmentSpec


class UnsupportedCode(ValueError):
    """The code source cannot be served by this provider."""


# (namespace, source, verified digest or None) -> the CodeRef, or None when it cannot serve it.
CodeResolver = Callable[[str, Code | Layer, str | None], CodeRef | None]


def code_ref(
    code: Code | Layer,
    base_dir: Path | None,
    digest: str | None = None,
    *,
    namespace: str = "default",
    resolve: CodeResolver | None = None,
) -> CodeRef:
    if code.inline is not None:
        return CodeRef(inline=code.inline, sha256=code.sha256)
    if code.path is not None:
        path = Path(code.path)
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        return CodeRef(path=str(path.resolve()), sha256=code.sha256 or digest)
    if code.url is not None:
        return CodeRef(url=code.url, sha256=code.sha256)
    if resolve is not None:
        found = resolve(namespace, code, digest)
        if found is not None:
            return found
    kind = code.source_kind() if isinstance(code, Layer) or code.image is None else "image"
    raise UnsupportedCode(
        f"code from {kind} needs cluster mode; use path, inline or url (with sha256) in dev mode"
    )


def environment_spec(
    version: FunctionVersion,
    *,
    region: str,
    initialization_type: Literal["on-demand", "provisioned-concurrency"] = "on-demand",
    resolve: CodeResolver | None = None,
    images: bool = False,
    secrets: SecretLookup | None = None,
) -> EnvironmentSpec:
    """`images`: packageType Image is served (cluster mode: the pod runs the function's image).
    `secrets`: where environment.secretKeyRefs are read (none: a function with any is refused)."""
    spec = version.spec
    image = spec.code.image if spec.package_type == "Image" else None
    if (spec.package_type == "Image" and not images) or (image is None and spec.runtime is None):
        raise LambdaError(
            "InvalidParameterValueException",
            f"{version.function}: packageType Image needs cluster mode (no container engine here)",
        )
    refs = spec.environment.secret_key_refs if spec.environment else {}
    secret_values = resolve_secrets(version.function, version.namespace, refs, secrets)
    try:
        ns = version.namespace
        code = (
            CodeRef(image=image)
            if image is not None
            else code_ref(
                spec.code, version.base_dir, version.code_sha256, namespace=ns, resolve=resolve
            )
        )
        layers = [
            code_ref(layer, version.base_dir, namespace=ns, resolve=resolve)
            for layer in spec.layers
        ]
    except UnsupportedCode as exc:
        raise LambdaError("InvalidParameterValueException", f"{version.function}: {exc}") from None
    logging = spec.logging_config
    return EnvironmentSpec(
        namespace=version.namespace,
        function_name=version.function,
        function_version=version.version,
        function_arn=function_arn(region, version.namespace, version.function),
        runtime=spec.runtime or "",
        package_type=spec.package_type,
        handler=spec.handler,
        memory_size=spec.memory_size,
        timeout=float(spec.timeout),
        ephemeral_storage=spec.ephemeral_storage,
        environment=dict(spec.environment.variables) if spec.environment else {},
        code=code,
        layers=layers,
        region=region,
        log_format=logging.log_format if logging else "Text",
        application_log_level=logging.application_log_level if logging else None,
        system_log_level=logging.system_log_level if logging else None,
        initialization_type=initialization_type,
        secrets=secret_values,
    )
