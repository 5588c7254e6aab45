"""The pure parts of the runtime-container handshake: release.env/.json and exit statuses."""

from __future__ import annotations

import json
import subprocess

from kubelambda.runtime.container import env_file, release_files, returncode_of
from kubelambda.runtime.pyshim import read_env


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
    files = release_files(env, 128)
    document = json.loads(files["release.json"])
    parsed_env, cap = read_env(files["release.env"])
    assert document["env"] == parsed_env == env
    assert document["address_space"] == cap and cap is not None and cap > 128 * 1024 * 1024
    uncapped = json.loads(release_files(env, None)["release.json"])
    assert (
        uncapped["address_space"] is None
        and "ulimit" not in release_files(env, None)["release.env"]
    )
