"""The acceptance pipelines, a boto3 script and an AWS CLI script, against `kubelambda dev`.

The scripts (scripts/) are written as they would be against AWS; the cluster suite runs the
same files against the real control plane (tests/cluster/test_control_api.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.component.control.flows import boto3_flow, check_boto3_flow, check_cli_flow, cli_flow
from tests.component.gateway.conftest import DevGateway


def test_boto3_pipeline(control: DevGateway, tmp_path: Path) -> None:
    check_boto3_flow(boto3_flow(control.url, "pipe-boto", tmp_path))


# Every `aws` call starts a Python interpreter: ~25 calls take 1-2 minutes on a loaded 2-core
# machine, so this runs in `make test-slow`; the boto3 pipeline covers the same steps in
# `make test`.
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_aws_cli_pipeline(control: DevGateway, tmp_path: Path) -> None:
    check_cli_flow(cli_flow(control.url, "pipe-cli", tmp_path))
