"""Dev mode's walk for manifests: every YAML file, never its own state folder."""

from __future__ import annotations

from pathlib import Path

from kubelambda.api.manifests import yaml_files


def test_the_state_folder_is_never_walked(tmp_path: Path) -> None:
    (tmp_path / "fn").mkdir()
    (tmp_path / "a.yaml").write_text("{}")
    (tmp_path / "fn" / "b.yml").write_text("{}")
    (tmp_path / "fn" / "c.txt").write_text("")
    state = tmp_path / ".kubelambda" / "environments" / "env-1"
    state.mkdir(parents=True)
    (state / "left.yaml").write_text("{}")
    assert yaml_files(tmp_path) == [tmp_path / "a.yaml", tmp_path / "fn" / "b.yml"]
