"""Dev mode refuses exactly what `kubelambda validate` reports, and a published Version keeps its
snapshot across restarts of `kubelambda dev`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.component.gateway.conftest import KUBELAMBDA, DevGateway

MANIFESTS = """\
apiVersion: kubelambda.dev/v1alpha1
kind: Function
metadata: {name: hot}
spec: {runtime: python3.12, handler: app.handler, code: {path: ./hot}}
---
apiVersion: kubelambda.dev/v1alpha1
kind: Version
metadata: {name: hot-1}
spec: {functionName: hot%s}
"""
BROKEN = """\
apiVersion: kubelambda.dev/v1alpha1
kind: Alias
metadata: {name: live}
spec: {functionName: hot, functionVersion: "9"}
---
apiVersion: kubelambda.dev/v1alpha1
kind: Version
metadata: {name: orphan-1}
spec: {functionName: orphan}
"""
CODE = "def handler(event, context):\n    return '%s'\n"


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "fns"
    (folder / "hot").mkdir(parents=True)
    (folder / "fns.yaml").write_text(MANIFESTS % "")
    (folder / "hot" / "app.py").write_text(CODE % "v1")
    return folder


def _call(dev: DevGateway, qualifier: str) -> object:
    response = dev.client().invoke(FunctionName="hot", Qualifier=qualifier)
    return json.loads(response["Payload"].read())


def test_a_version_keeps_its_snapshot_across_restarts(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    dev = DevGateway(folder, "--no-reload")
    try:
        assert _call(dev, "1") == "v1" and _call(dev, "$LATEST") == "v1"
    finally:
        dev.stop()
    (folder / "hot" / "app.py").write_text(CODE % "v2")
    dev = DevGateway(folder, "--no-reload")
    try:
        assert _call(dev, "$LATEST") == "v2"
        assert _call(dev, "1") == "v1"  # published before the edit: it never changes
    finally:
        dev.stop()
    # Editing the Version manifest itself is refused, as the apiserver's CEL rules would.
    (folder / "fns.yaml").write_text(MANIFESTS % ", description: changed")
    dev = DevGateway(folder, "--no-reload")
    try:
        assert "Version/hot-1: spec: a Version is immutable; the change is ignored" in dev.log()
        assert _call(dev, "1") == "v1"
    finally:
        dev.stop()


def test_dev_mode_refuses_what_validate_reports(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "broken.yaml").write_text(BROKEN)
    checked = subprocess.run(
        [KUBELAMBDA, "validate", str(folder)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 1
    reported = [line for line in checked.stderr.splitlines() if ": document " in line]
    assert len(reported) == 2, checked.stderr
    dev = DevGateway(folder, "--no-reload")
    try:
        log = dev.log()
        for line in reported:
            assert f"  ! {line}" in log
        assert _call(dev, "1") == "v1"  # the rest is served
        client = dev.client()
        try:
            client.invoke(FunctionName="hot", Qualifier="live")
            raise AssertionError("the refused alias was served")
        except client.exceptions.ResourceNotFoundException:
            pass
    finally:
        dev.stop()
