"""The pure parts of the runtime-container handshake: release.env/.json and exit statuses."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from kubelambda.runtime.handshake import (
    PYSHIM,
    bootstrap_files,
    env_file,
    numbered,
    release_files,
    returncode_of,
)
from kubelambda.runtime.pyshim import _release, read_env


def test_release_env_survives_any_value_when_sourced_by_sh() -> None:
    env = {"PLAIN": "x", "QUOTES": 'it\'s "here"', "LINES": "a\nb", "DOLLAR": "$HOME `id`"}
    script = env_file(env) + 'printf "%s|%s|%s|%s" "$PLAIN" "$QUOTES" "$LINES" "$DOLLAR"'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == "|".join(env.values())


def test_wait_statuses_become_popen_return_codes() -> None:
    assert returncode_of(0) == 0
    assert returncode_of(3) == 3
    assert returncode_of(137) == -9  # SIGKILL: "signal: killed" in Runtime.ExitError


def test_release_json_says_what_release_env_says() -> None:
    env = {"PLAIN": "x", "QUOTES": 'it\'s "here"', "LINES": "a\nb", "EMPTY": ""}
    files = release_files({"env": env, "cwd": "/var/task", "mode": "exec", "memory_mb": 128})
    document = json.loads(files["release.json"])
    parsed_env, cap = read_env(files["release.env"])
    assert document["env"] == parsed_env == env
    assert document["address_space"] == cap and cap is not None and cap > 128 * 1024 * 1024
    uncapped_files = release_files({"env": env, "cwd": "/var/task", "mode": "exec"})
    uncapped = json.loads(uncapped_files["release.json"])
    assert uncapped["address_space"] is None and "ulimit" not in uncapped_files["release.env"]
    # What the Python shim needs to choose its runtime; the image's entry point by default.
    assert (document["mode"], document["channel"], document["sys_path"]) == ("exec", "http", [])
    ours = release_files(
        {"env": env, "cwd": "/t", "mode": "python", "channel": "pipe", "sys_path": ["/t"]}
    )
    assert json.loads(ours["release.json"])["mode"] == "python"
    assert json.loads(ours["release.json"])["channel"] == "pipe"
    assert json.loads(ours["release.json"])["sys_path"] == ["/t"]


def test_the_shipped_bootstrap_imports_only_the_stdlib_and_itself() -> None:
    """The runtime container has no kubelambda: what the agent ships must be all it needs."""
    files = bootstrap_files()
    shipped = {
        path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        for path in files
        if path.endswith(".py")
    }
    assert "kubelambda.runtime.bootstrap" in shipped
    for path, source in files.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module is not None:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name in shipped or name.split(".")[0] in sys.stdlib_module_names, (
                    f"{path} imports {name}"
                )


def test_the_python_shim_imports_nothing_of_kubelambda() -> None:
    for node in ast.walk(ast.parse(PYSHIM)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            assert not any((n or "").startswith("kubelambda") for n in names), names


def test_each_release_reads_the_files_its_line_names(tmp_path: Path) -> None:
    """`go N` names release-N.*; a bare `go` (an older agent) the fixed names."""
    assert numbered("release.json", 3) == "release-3.json"
    for generation, line in ((3, b"go 3\n"), (None, b"go\n")):
        files = release_files({"env": {"N": str(generation)}, "cwd": "/t", "mode": "python"})
        for name, content in files.items():
            target = numbered(name, generation) if generation else name
            (tmp_path / target).write_text(content)
        env, _cap, message = _release(str(tmp_path), line)
        assert env == {"N": str(generation)} and message["mode"] == "python"
    (tmp_path / "release-3.json").unlink()  # no JSON: the shell's file, as the `sh` shim reads
    env, _cap, message = _release(str(tmp_path), b"go 3\n")
    assert env == {"N": "3"} and message == {}
