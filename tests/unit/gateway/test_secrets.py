"""environment.secretKeyRefs: the --secrets file, resolution into the spec, the cluster's fetch,
and that a value never shows in a dump, a repr or a revision."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from kubelambda.api.function import SecretKeyRef
from kubelambda.api.resources import parse_resource
from kubelambda.dev.secrets import SecretsFileError, load_secrets_file
from kubelambda.kube.client import ApiError
from kubelambda.kube.secrets import ClusterSecrets, decode_secret, wanted_secrets
from kubelambda.runtime.envvars import Layout, build_environment
from kubelambda.runtime.spec import EnvironmentSpec
from kubelambda.serving.catalog import build_catalog
from kubelambda.serving.errors import LambdaError
from kubelambda.serving.secrets import resolve_secrets, unresolved
from kubelambda.serving.specs import SpecBuilder, environment_spec

VALUE = "s3cr3t-Value-9f1c"
REFS = {"TOKEN": SecretKeyRef(name="api", key="token")}


def _function(**environment: Any) -> Any:
    return parse_resource(
        {
            "apiVersion": "kubelambda.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "f", "namespace": "team"},
            "spec": {
                "runtime": "python3.12",
                "handler": "a.b",
                "code": {"inline": {"a.py": ""}},
                "environment": environment,
            },
        }
    )


def test_yaml_secret_manifests_and_plain_mappings(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    encoded = base64.b64encode(VALUE.encode()).decode()
    path.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: api, namespace: team}\n"
        f"data: {{token: {encoded}}}\nstringData: {{user: bob}}\n---\n"
        "db: {password: hunter2}\n"
    )
    found = load_secrets_file(path)
    assert found.lookup("team", "api", "token") == VALUE
    assert found.lookup("team", "api", "user") == "bob"
    assert found.lookup("default", "api", "token") is None  # the Secret's own namespace only
    assert found.lookup("anywhere", "db", "password") == "hunter2"
    assert found.lookup("team", "db", "nope") is None
    assert found.source == f"--secrets {path}"


def test_dotenv_matches_by_key(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(f'# comment\ntoken="{VALUE}"\nexport OTHER=x\n')
    found = load_secrets_file(path)
    assert found.lookup("team", "api", "token") == VALUE
    assert found.lookup("default", "whatever", "OTHER") == "x"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a: [\n", "not valid YAML"),
        ("apiVersion: v1\nkind: Secret\nmetadata: {}\n", "needs metadata.name"),
        ("kind: Secret\nmetadata: {name: s}\ndata: {k: '%%%'}\n", "data.k is not base64"),
        ("db: 3\n", "db: expected a mapping"),
    ],
)
def test_a_bad_secrets_file_says_where(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SecretsFileError, match=says) as refused:
        load_secrets_file(path)
    assert str(path) in str(refused.value)


def test_resolution_names_the_field_and_never_the_value() -> None:
    def lookup(ns: str, name: str, key: str) -> str | None:
        return VALUE if (ns, name, key) == ("team", "api", "token") else None

    assert resolve_secrets("f", "team", REFS, lookup) == {"TOKEN": VALUE}
    missing = {"DB": SecretKeyRef(name="db", key="pw")}
    with pytest.raises(LambdaError) as refused:
        resolve_secrets("f", "team", missing, lookup, "--secrets x.env")
    assert refused.value.code == "InvalidParameterValueException"
    assert (
        "spec.environment.secretKeyRefs.DB: Secret team/db has no key 'pw' in --secrets x.env"
        in (refused.value.message)
    )
    assert unresolved("team", {**REFS, **missing}, lookup, "here") == [
        "spec.environment.secretKeyRefs.DB: Secret team/db has no key 'pw' in here"
    ]
    with pytest.raises(LambdaError, match="no secret source here"):
        resolve_secrets("f", "team", REFS, None)


def test_the_spec_carries_values_only_over_the_wire() -> None:
    catalog = build_catalog([_function(secretKeyRefs={"TOKEN": {"name": "api", "key": "token"}})])
    version = catalog.functions[("team", "f")].latest
    spec = environment_spec(version, region="us-east-1", secrets=lambda *_: VALUE)
    assert spec.secrets == {"TOKEN": VALUE}
    for shown in (repr(spec), str(spec), spec.model_dump_json(), str(spec.model_dump())):
        assert VALUE not in shown
    assert VALUE not in str(version.spec.to_manifest()) and VALUE not in version.revision
    wire = spec.wire_json()
    assert VALUE in wire and EnvironmentSpec.model_validate_json(wire).secrets == spec.secrets
    layout = Layout(Path("/t"), Path("/o"), Path("/tmp"), Path("/rt"))
    env = build_environment(spec, layout=layout, runtime_api="a", log_stream="s", host_env={})
    assert env["TOKEN"] == VALUE
    with pytest.raises(LambdaError, match="no secret source"):
        environment_spec(version, region="us-east-1")  # e.g. the operator's provisioned specs


class FakeApi:
    def __init__(self, docs: dict[str, Any]) -> None:
        self.docs = docs
        self.paths: list[str] = []

    async def get(self, path: str) -> Any:
        self.paths.append(path)
        if path not in self.docs:
            raise ApiError(404, {"message": "not found"}, path)
        return self.docs[path]


async def test_the_cluster_gateway_gets_the_named_secrets_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    catalog = build_catalog(
        [
            _function(
                secretKeyRefs={
                    "TOKEN": {"name": "api", "key": "token"},
                    "XY": {"name": "api", "key": "t"},
                }
            )
        ]
    )
    assert wanted_secrets(catalog) == {("team", "api")}
    path = "/api/v1/namespaces/team/secrets/api"
    data = {"token": base64.b64encode(VALUE.encode()).decode(), "bin": "/w=="}
    api = FakeApi({path: {"data": data}})
    secrets = ClusterSecrets(api)  # type: ignore[arg-type]
    assert await secrets.refresh(catalog) is True  # values read: changed
    assert api.paths == [path] and secrets.lookup("team", "api", "token") == VALUE
    assert await secrets.refresh(catalog) is False  # read again, the same values
    assert secrets.lookup("team", "api", "bin") is None  # not UTF-8: not an env value
    api.docs.clear()
    assert await secrets.refresh(catalog) is True  # deleted: forgotten, the log names it
    assert secrets.lookup("team", "api", "token") is None
    assert "Secret team/api for secretKeyRefs: HTTP 404" in caplog.text
    assert VALUE not in caplog.text
    assert decode_secret({"data": {"a": base64.b64encode(b"b").decode()}}) == {"a": "b"}


def test_a_rotated_value_reaches_the_next_served_catalog_only() -> None:
    """A revision leaves secret values out, so a served catalog does not keep a target that
    carries them: serving again picks up a rotated value, under the same revision."""
    values = {"token": VALUE}
    builder = SpecBuilder(secrets=lambda _ns, _name, key: values.get(key))
    refs = {"TOKEN": {"name": "api", "key": "token"}}
    first = build_catalog([_function(secretKeyRefs=refs)]).serve(builder.target, "us-east-1")
    (target,) = first.targets.values()
    assert target.spec().secrets == {"TOKEN": VALUE} and not target.pinned
    values["token"] = "rotated"
    again = build_catalog([_function(secretKeyRefs=refs)])
    again.serve(builder.target, "us-east-1", known=first.targets)
    (fresh,) = again.targets.values()
    assert fresh.revision == target.revision and fresh.spec().secrets == {"TOKEN": "rotated"}
    assert fresh.spec("provisioned-concurrency").secrets == {"TOKEN": "rotated"}
    del values["token"]  # the Secret lost its key: the target says why, naming the field
    gone = build_catalog([_function(secretKeyRefs=refs)])
    (problem,) = gone.serve(builder.target, "us-east-1", known=again.targets).targets.values()
    assert problem.problem is not None and "secretKeyRefs.TOKEN" in problem.problem.message
    plain = build_catalog([_function()]).serve(builder.target, "us-east-1")
    assert all(t.pinned for t in plain.targets.values())  # no secrets: kept across catalogs
