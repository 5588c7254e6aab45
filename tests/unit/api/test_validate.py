"""`kubelambda validate` reports what dev mode refuses: every bad document, each naming its file,
document, kind/name, field and what is allowed; and the set checks dev mode shares with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelambda.api.checks import check_set, number_versions
from kubelambda.api.manifests import read_paths
from kubelambda.api.resources import Version
from kubelambda.cli import main

HEAD = "apiVersion: kubelambda.dev/v1alpha1\n"


def _fn(name: str, code: str = "{inline: {app.py: 'x'}}", extra: str = "") -> str:
    return (
        f"{HEAD}kind: Function\nmetadata: {{name: {name}}}\n"
        f"spec: {{runtime: python3.12, handler: app.handler, code: {code}{extra}}}\n"
    )


def _version(name: str, function: str, number: int | None = None) -> str:
    extra = f", version: {number}" if number else ""
    spec = f"spec: {{functionName: {function}{extra}}}\n"
    return f"{HEAD}kind: Version\nmetadata: {{name: {name}}}\n{spec}"


def _alias(name: str, function: str, version: str, weights: str = "") -> str:
    routing = f", routingConfig: {{additionalVersionWeights: {{{weights}}}}}" if weights else ""
    return (
        f"{HEAD}kind: Alias\nmetadata: {{name: {name}}}\n"
        f'spec: {{functionName: {function}, functionVersion: "{version}"{routing}}}\n'
    )


def _validate(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, str, str]:
    code = main(["validate", *map(str, paths)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_cross_resource_case_dev_mode_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "hello").mkdir()
    path = tmp_path / "set.yaml"
    path.write_text(
        "---\n".join(
            [
                _fn("hello", "{path: ./hello}"),
                _fn("hello"),
                _fn("gone", "{path: ./gone}"),
                _version("hello-1", "hello"),
                _version("orphan-1", "orphan"),
                _alias("live", "hello", "2"),
                _alias("beta", "hello", "1", '"7": 0.5'),
            ]
        )
    )
    code, _, err = _validate(capsys, path)
    assert code == 1
    lines = err.splitlines()
    assert (
        f"{path}: document 2: Function/hello: metadata.name: Function default/hello is "
        f"already defined in {path}: document 1; function names must be unique in a namespace"
        in lines
    )
    assert any(
        line.startswith(
            f"{path}: document 3: Function/gone: spec.code.path: ./gone does not exist (looked for "
        )
        and "allowed: a folder or .zip, relative to the manifest's folder" in line
        for line in lines
    )
    assert (
        f"{path}: document 5: Version/orphan-1: spec.functionName: function orphan not found "
        "(functions in this namespace: gone, hello)" in lines
    )
    assert (
        f"{path}: document 6: Alias/live: spec.functionVersion: version 2 of hello not found "
        "(its versions: $LATEST, 1)" in lines
    )
    assert (
        f"{path}: document 7: Alias/beta: spec.routingConfig.additionalVersionWeights.7: "
        "version 7 of hello not found (its versions: $LATEST, 1)" in lines
    )
    assert lines[-1] == "5 problem(s) found; 7 object(s) read"


def test_a_file_with_two_bad_documents_reports_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        "---\n".join(
            [
                _fn("a", extra=", memorySize: 1"),
                _fn("ok"),
                _alias("live", "ok", "1", '"2": 0.1, "3": 0.2'),
                _fn("env", extra=", environment: {variables: {AWS_REGION: x, 1BAD: y}}"),
            ]
        )
    )
    code, _, err = _validate(capsys, path)
    assert code == 1
    lines = err.splitlines()
    assert (
        f"{path}: document 1: Function/a: spec.memorySize: must be between 128 and 10240 (got 1)"
        in lines
    )
    assert (
        f"{path}: document 3: Alias/live: spec.routingConfig.additionalVersionWeights: "
        "must have at most 1 entry (got 2)" in lines
    )
    env = next(line for line in lines if "Function/env" in line)
    assert env.startswith(f"{path}: document 4: Function/env: spec.environment.variables: 1BAD: ")
    assert "AWS_REGION: reserved, Lambda sets it" in env
    assert "got None" not in err


def test_yaml_errors_name_the_file_and_other_kinds_are_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [\n")
    other = tmp_path / "other.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    code, out, err = _validate(capsys, broken, other)
    assert code == 1
    assert f"{broken}: line 2, column 1: not valid YAML: while parsing a flow node" in err
    assert "<unicode string>" not in err
    assert f"{other}: no kubelambda.dev objects in this file (found: ConfigMap/x (v1))" in out
    code, out, err = _validate(capsys, other)
    assert code == 1 and "no kubelambda.dev objects found" in err
    assert "0 kubelambda object(s) valid" not in out


def test_a_valid_folder_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "fns.yaml").write_text(
        "---\n".join(
            [
                _fn("hello", "{path: ./code}"),
                _version("hello-1", "hello"),
                _version("hello-5", "hello", 5),
                _alias("live", "hello", "6", '"5": 0.25'),
            ]
        )
    )
    code, out, err = _validate(capsys, tmp_path)
    assert (code, err) == (0, "")
    assert out.strip() == "4 kubelambda object(s) valid"


def test_versions_are_numbered_as_dev_mode_numbers_them(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(
        "---\n".join(
            [_version("a", "f"), _version("b", "f", 3), _version("c", "f"), _version("d", "g")]
        )
    )
    docs = read_paths([path]).documents
    numbers = number_versions(docs)
    by_name = {d.resource.name: numbers[id(d)] for d in docs if isinstance(d.resource, Version)}
    assert by_name == {"a": 4, "b": 3, "c": 5, "d": 1}
    pinned = number_versions(docs, {id(docs[0]): 1})
    assert [pinned[id(d)] for d in docs] == [1, 3, 4, 1]


def test_the_set_check_is_pure(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(_fn("f", "{path: ./missing}"))
    docs = read_paths([path]).documents
    assert [p.message.split(":")[0] for p in check_set(docs)] == ["spec.code.path"]
    assert check_set(docs, exists=lambda _: True) == []
