"""`kubelambda dev --secrets FILE`: a function reads a secret, and the value appears in no log
line, no API response, no `kubelambda logs` output and no file of the state folder."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from tests.component.gateway.conftest import KUBELAMBDA, DevGateway

VALUE = "tok-8c1e0f5b-never-printed"
MANIFESTS = """\
apiVersion: kubelambda.dev/v1alpha1
kind: Function
metadata: {name: reader}
spec:
  runtime: python3.12
  handler: app.handler
  code: {path: ./reader}
  environment:
    variables: {PLAIN: visible}
    secretKeyRefs: {API_TOKEN: {name: api, key: token}}
---
apiVersion: kubelambda.dev/v1alpha1
kind: Version
metadata: {name: reader-1}
spec: {functionName: reader}
---
apiVersion: kubelambda.dev/v1alpha1
kind: Function
metadata: {name: lacking}
spec:
  runtime: python3.12
  handler: app.handler
  code: {path: ./reader}
  environment: {secretKeyRefs: {DB_PASSWORD: {name: db, key: password}}}
"""
CODE = """\
import hashlib, os

def handler(event, context):
    token = os.environ["API_TOKEN"]
    print("token length", len(token))
    return {"sha256": hashlib.sha256(token.encode()).hexdigest(), "plain": os.environ["PLAIN"]}
"""


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "fns"
    (folder / "reader").mkdir(parents=True)
    (folder / "fns.yaml").write_text(MANIFESTS)
    (folder / "reader" / "app.py").write_text(CODE)
    return folder


def test_a_secret_reaches_the_function_and_nothing_else(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: api}}\nstringData: {{token: {VALUE}}}\n"
    )
    dev = DevGateway(folder, "--no-reload", "--secrets", str(secrets))
    try:
        client = dev.client()
        expected = {"sha256": hashlib.sha256(VALUE.encode()).hexdigest(), "plain": "visible"}
        responses = []
        for qualifier in ("$LATEST", "1"):
            response = client.invoke(FunctionName="reader", Qualifier=qualifier, LogType="Tail")
            body = response["Payload"].read()
            assert json.loads(body) == expected
            responses.append(json.dumps({**response, "Payload": body.decode()}, default=str))
        api = [
            client.get_function(FunctionName="reader"),
            client.get_function_configuration(FunctionName="reader"),
            client.get_function_configuration(FunctionName="reader", Qualifier="1"),
            client.list_functions(),
            client.list_versions_by_function(FunctionName="reader"),
        ]
        shown = [json.dumps(a, default=str) for a in api]
        assert any('"PLAIN": "visible"' in s for s in shown)  # variables are shown, as Lambda
        logs = subprocess.run(
            [KUBELAMBDA, "logs", "reader", "--endpoint", dev.url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "token length 26" in logs
        # The function without its secret in the file is refused at load, naming the field.
        assert (
            "Function/lacking: spec.environment.secretKeyRefs.DB_PASSWORD: Secret default/db has "
            f"no key 'password' in --secrets {secrets}" in dev.log()
        )
    finally:
        dev.stop()
    state = [p for p in (folder / ".kubelambda").rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" for p in state)  # the Version's snapshot record is there
    for text in [dev.log(), logs, *responses, *shown]:
        assert VALUE not in text
    for path in state:
        assert VALUE.encode() not in path.read_bytes(), path


def test_secret_refs_without_a_secrets_file_are_refused_at_load(tmp_path: Path) -> None:
    dotenv = tmp_path / "only-token.env"
    dotenv.write_text(f"token={VALUE}\n")
    dev = DevGateway(_folder(tmp_path), "--no-reload")
    try:
        assert (
            "Function/reader: spec.environment.secretKeyRefs: dev mode reads Secret values from "
            "`kubelambda dev --secrets FILE` (dotenv or YAML); none was given" in dev.log()
        )
    finally:
        dev.stop()
    dev = DevGateway(tmp_path / "fns", "--no-reload", "--secrets", str(dotenv))
    try:
        response = dev.client().invoke(FunctionName="reader")
        assert json.loads(response["Payload"].read())["plain"] == "visible"
        assert VALUE not in dev.log()
    finally:
        dev.stop()
