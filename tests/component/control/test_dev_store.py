"""Dev mode's store: API objects beside the folder's manifests, which stay read-only; API
objects survive a restart; every operation we do not serve answers JSON naming it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kubelambda.gateway.control_api.routes import lambda_model
from kubelambda.serving.control.operations import DATA_PLANE, SERVED
from tests.component.control.conftest import dev_gateway
from tests.component.control.helpers import create, error_of, handler_zip, lambda_client
from tests.component.gateway.conftest import DevGateway
from tests.component.s3server import S3Server

MANIFEST = """\
apiVersion: kubelambda.dev/v1alpha1
kind: Function
metadata: {name: from-file}
spec:
  runtime: python3.12
  handler: app.handler
  code: {inline: {app.py: "def handler(e, c):\\n    return 'file'\\n"}}
"""


def test_folder_manifests_are_listed_and_read_only(tmp_path: Path, s3: S3Server) -> None:
    folder = tmp_path / "fns"
    folder.mkdir()
    (folder / "from-file.yaml").write_text(MANIFEST)
    dev = dev_gateway(folder, s3)
    try:
        client = lambda_client(dev.url)
        create(client, "from-api", handler_zip("api"))
        names = sorted(f["FunctionName"] for f in client.list_functions()["Functions"])
        assert names == ["from-api", "from-file"]
        config = client.get_function_configuration(FunctionName="from-file")
        assert config["State"] == "Active"
        for call in (
            lambda: client.update_function_configuration(FunctionName="from-file", Timeout=9),
            lambda: client.put_function_concurrency(
                FunctionName="from-file", ReservedConcurrentExecutions=1
            ),
            lambda: client.delete_function(FunctionName="from-file"),
        ):
            with pytest.raises(client.exceptions.ResourceConflictException) as caught:
                call()
            status, _, message = error_of(caught.value)
            assert status == 409 and "edit the file" in message and "from-file.yaml" in message
        with pytest.raises(client.exceptions.ResourceConflictException):
            create(client, "from-file", handler_zip("x"))
        assert "file" in (folder / "from-file.yaml").read_text()  # untouched
    finally:
        dev.stop()


def test_api_objects_survive_a_restart(tmp_path: Path, s3: S3Server) -> None:
    folder = tmp_path / "fns"
    dev = dev_gateway(folder, s3)
    try:
        client = lambda_client(dev.url)
        create(client, "keeper", handler_zip("kept"))
        version = client.publish_version(FunctionName="keeper")["Version"]
        client.create_alias(FunctionName="keeper", Name="live", FunctionVersion=version)
        revision = client.get_function(FunctionName="keeper")["Configuration"]["RevisionId"]
    finally:
        dev.stop()
    again = dev_gateway(folder, s3)
    try:
        client = lambda_client(again.url)
        config = client.get_function_configuration(FunctionName="keeper")
        assert (config["State"], config["RevisionId"]) == ("Active", revision)
        answer = client.invoke(FunctionName="keeper:live", Payload=b"{}")
        assert json.loads(answer["Payload"].read()) == "kept"
        assert answer["ExecutedVersion"] == version
    finally:
        again.stop()


def _fill(uri: str) -> str:
    import re

    return re.sub(r"\{[^}]+\}", "x", uri)


def test_every_operation_we_do_not_serve_answers_json_naming_it(control: DevGateway) -> None:
    model = lambda_model()
    unserved = [n for n in model.operation_names if n not in SERVED and n not in DATA_PLANE]
    assert unserved, "botocore's model has operations we do not serve"
    for name in unserved:
        http = model.operation_model(name).http
        request = urllib.request.Request(
            control.url + _fill(http["requestUri"]), method=http["method"], data=b"{}"
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        answer: Any = caught.value
        body = json.loads(answer.read())
        assert answer.code == 400, name
        assert answer.headers["x-amzn-ErrorType"] == "InvalidParameterValueException", name
        assert body["Operation"] == name and name in body["message"]
