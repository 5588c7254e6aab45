"""The CLI lists every role and command, and unbuilt commands refuse honestly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kubelambda import cli
from kubelambda.cli import COMMANDS, _module_available, main

EXPECTED = {"dev", "invoke", "operator", "gateway", "agent", "poll", "crds", "deploy", "publish"}


def test_help_lists_every_command_with_a_summary() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kubelambda.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in COMMANDS:
        assert command.name in out
    assert {c.name for c in COMMANDS} >= EXPECTED


def test_every_listed_command_is_built() -> None:
    unbuilt = [c.name for c in COMMANDS if c.module is None or not _module_available(c.module)]
    assert not unbuilt


def test_an_unbuilt_command_says_so_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every command is built now; one without a module is how a planned command is listed.
    monkeypatch.setattr(cli, "COMMANDS", (*COMMANDS, cli.Command("later", "a planned one", None)))
    assert main(["later"]) == 2
    assert "not built yet" in capsys.readouterr().err


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "commands" in capsys.readouterr().out


def test_validate_reports_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "fn.yaml"
    bad.write_text(
        "apiVersion: kubelambda.dev/v1alpha1\nkind: Function\nmetadata: {name: f}\n"
        "spec: {runtime: python3.12, handler: a.b, code: {path: .}, timeout: 0}\n"
    )
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: Function/f: spec.timeout: must be between 1 and 900 (got 0)" in err
