"""The acceptance pipelines (scripts/lambda_flow.py with boto3, scripts/lambda_flow.sh with the
AWS CLI) as functions, and the checks of what they print: the dev-mode tests (test_scripts.py)
and the cluster suite (tests/cluster/test_control_api.py) run the same files and checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).parent / "scripts"
BIN = str(Path(sys.executable).parent)


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def check_boto3_flow(out: str) -> None:
    """What lambda_flow.py printed is what Lambda answers (shared with the cluster suite)."""
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


def check_cli_flow(out: str) -> None:
    """What lambda_flow.sh printed is what Lambda answers (shared with the cluster suite)."""
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


def boto3_flow(url: str, name: str, workdir: Path) -> str:
    return run([sys.executable, str(SCRIPTS / "lambda_flow.py"), url, name], workdir)


def cli_flow(url: str, name: str, workdir: Path) -> str:
    return run(["bash", str(SCRIPTS / "lambda_flow.sh"), url, name, str(workdir)], workdir)
