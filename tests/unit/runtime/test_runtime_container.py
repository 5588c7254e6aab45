"""The pure parts of the runtime-container handshake: release.env and exit statuses."""

from __future__ import annotations

import subprocess

from kubelambda.runtime.container import env_file, returncode_of


def test_release_env_survives_any_value_when_sourced_by_sh() -> None:
    env = {"PLAIN": "x", "QUOTES": 'it\'s "here"', "LINES": "a\nb", "DOLLAR": "$HOME `id`"}
    script = env_file(env) + 'printf "%s|%s|%s|%s" "$PLAIN" "$QUOTES" "$LINES" "$DOLLAR"'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == "|".join(env.values())


def test_wait_statuses_become_popen_return_codes() -> None:
    assert returncode_of(0) == 0
    assert returncode_of(3) == 3
    assert returncode_of(137) == -9  # SIGKILL: "signal: killed" in Runtime.ExitError
