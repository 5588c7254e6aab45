"""The acceptance pipelines, a boto3 script and an AWS CLI script, against `kubelambda dev`.

The scripts (scripts/) are written as they would be against AWS; the cluster suite runs the
same files against the real control plane.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.component.gateway.conftest import DevGateway

SCRIPTS = Path(__file__).parent / "scripts"
BIN = str(Path(sys.executable).parent)


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_boto3_pipeline(control: DevGateway, tmp_path: Path) -> None:
    out = run([sys.executable, str(SCRIPTS / "lambda_flow.py"), control.url, "pipe-boto"], tmp_path)
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["created_state"] == "Pending"
    assert seen["first"] == {"code": "one", "version": "$LATEST"}
    assert seen["update_status"] == "InProgress"
    assert seen["second"] == {"code": "two", "version": "$LATEST"}
    assert seen["versions"] == ["1", "2"]
    counts = seen["alias_counts"]
    assert set(counts) == {"1", "2"}
    # 400 draws at 10 %: 40 expected, sd 6; outside 12..80 has odds below one in a billion.
    assert 12 <= counts["2"] <= 80, counts
    assert seen["throttle"] == {
        "status": 429,
        "reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
    }
    assert seen["after_concurrency"] == {"code": "three", "version": "$LATEST"}
    assert seen["deleted_status"] == 404


# Every `aws` call starts a Python interpreter: ~25 calls take 1-2 minutes on a loaded 2-core
# machine, so this runs in `make test-slow`; the boto3 pipeline covers the same steps in
# `make test`.
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_aws_cli_pipeline(control: DevGateway, tmp_path: Path) -> None:
    out = run(
        ["bash", str(SCRIPTS / "lambda_flow.sh"), control.url, "pipe-cli", str(tmp_path)], tmp_path
    )
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines() if ": " in line)
    assert lines["created"] == "Pending"
    assert json.loads(lines["first"]) == {"code": "one", "version": "$LATEST"}
    assert lines["update"] == "InProgress"
    assert json.loads(lines["second"]) == {"code": "two", "version": "$LATEST"}
    assert lines["versions"] == "1 2"
    assert json.loads(lines["alias"]) == ["1", {"2": 0.1}]
    assert json.loads(lines["alias invoke"])["version"] in ("1", "2")
    assert lines["throttled"] == "TooManyRequestsException"
    assert json.loads(lines["after"]) == {"code": "three", "version": "$LATEST"}
    assert lines["deleted"] == "ResourceNotFoundException"
