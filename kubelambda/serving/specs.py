"""From a frozen function configuration to the `EnvironmentSpec` an environment specializes with.

`SpecBuilder` is how one gateway (or the operator, for provisioned pods) builds them, and the one
place that decides whether packageType Image is served.

Dev mode resolves code paths against the manifest's folder; sources that need a cluster
(a ConfigMap, S3 with a credentials Secret, a container image) are refused with a message that
says so; `code.s3` without a Secret is fetched with the environment's own credentials. Cluster
mode passes a `CodeResolver` that turns a ConfigMap source into inline files or a zip, and an
S3 source with `credentialsSecret` into one carrying the Secret's keys (`kubelambda.kube.codes`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubelambda.api.common import DEFAULT_REGION
from kubelambda.api.function import Code, Layer, S3Source
from kubelambda.runtime.archive import CodeError, vet_code
from kubelambda.runtime.spec import CodeRef, EnvironmentSpec, S3Ref
from kubelambda.serving.catalog import FunctionVersion
from kubelambda.serving.errors import LambdaError
from kubelambda.serving.names import function_arn
from kubelambda.serving.secrets import SecretLookup, resolve_secrets
from kubelambda.serving.shape import shape_of
from kubelambda.serving.target import InitType, Target


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
    if code.s3 is not None and code.s3.credentials_secret is None:
        if not (code.sha256 or digest):
            raise UnsupportedCode("code.s3 needs sha256, so the download can be verified")
        return CodeRef(s3=s3_ref(code.s3), sha256=code.sha256 or digest)
    kind = code.source_kind() if isinstance(code, Layer) or code.image is None else "image"
    raise UnsupportedCode(
        f"code from {kind} needs cluster mode; use path, inline or url (with sha256) in dev mode"
    )


def environment_spec(
    version: FunctionVersion,
    *,
    region: str,
    initialization_type: InitType = "on-demand",
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


@dataclass(frozen=True)
class SpecBuilder:
    """Specs as one gateway builds them: its region, whether it serves packageType Image (only
    where a pod runs the function's own image: cluster mode), where ConfigMap code comes from and
    where the values of environment.secretKeyRefs are read (dev mode: --secrets FILE; a cluster
    gateway: Kubernetes Secrets; none, as for the operator: a function with any is refused).
    """

    region: str = DEFAULT_REGION
    images: bool = False
    resolve: CodeResolver | None = None
    secrets: SecretLookup | None = None

    def spec(self, version: FunctionVersion, init: InitType = "on-demand") -> EnvironmentSpec:
        """Raises LambdaError (InvalidParameterValueException) when it cannot be served here."""
        return environment_spec(
            version,
            region=self.region,
            initialization_type=init,
            resolve=self.resolve,
            images=self.images,
            secrets=self.secrets,
        )

    def target(self, version: FunctionVersion) -> Target:
        """Everything the layers below resolution need for `version`, worked out now."""
        shape = shape_of(version.spec)
        runtime = version.spec.runtime or ""
        try:
            on_demand = self.spec(version)
            provisioned = self.spec(version, "provisioned-concurrency")
            # Unsafe code is refused now, when the configuration is loaded, not at an invoke.
            for ref in (on_demand.code, *on_demand.layers):
                vet_code(ref)
        except CodeError as exc:
            problem = LambdaError("InvalidParameterValueException", f"{version.function}: {exc}")
            return Target(version.revision, runtime, shape, problem=problem)
        except LambdaError as exc:
            return Target(version.revision, runtime, shape, problem=exc)
        return Target(version.revision, runtime, shape, on_demand, provisioned)


def s3_ref(
    s3: S3Source,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
) -> S3Ref:
    """Where an environment fetches a `code.s3` source; no keys: its default
    credentials."""
    return S3Ref(
        bucket=s3.bucket,
        key=s3.key,
        endpoint=s3.endpoint,
        region=s3.region,
        version_id=s3.version_id,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        session_token=session_token,
    )
