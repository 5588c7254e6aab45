"""The chart's CRDs are exact copies of the generated top-level crds/ (one source of truth).

crds/ is generated from the pydantic models (`make crds`) and never edited by hand. Helm installs
CRDs only from the chart's own crds/ folder, so that folder holds byte-identical copies, refreshed
with `cp crds/*.yaml charts/kubelambda/crds/` (see the failure messages).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from tests.chart.chart_helpers import CHART, REPO, render_scenario

GENERATED = REPO / "crds"
CHART_CRDS = CHART / "crds"
NOT_GENERATED: set[str] = set()
SYNC = "cp crds/*.yaml charts/kubelambda/crds/"


def _yaml_files(folder: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".yaml", ".yml")
    }


def test_every_generated_crd_is_copied_unchanged_into_the_chart() -> None:
    generated = _yaml_files(GENERATED)
    shipped = _yaml_files(CHART_CRDS)
    missing = sorted(set(generated) - set(shipped))
    assert not missing, f"chart lacks {missing}: run `{SYNC}`"
    stale = sorted(name for name in generated if generated[name] != shipped[name])
    assert not stale, f"chart copies differ from crds/ for {stale}: run `{SYNC}`"


def test_the_chart_ships_no_crd_that_is_not_generated() -> None:
    extra = set(_yaml_files(CHART_CRDS)) - set(_yaml_files(GENERATED)) - NOT_GENERATED
    assert not extra, (
        f"{sorted(extra)} are in the chart but not in crds/: delete them or regenerate"
    )


def test_chart_crds_are_plain_yaml_not_templates() -> None:
    for name, content in _yaml_files(CHART_CRDS).items():
        assert b"{{" not in content, f"{name}: Helm does not template crds/"
        for doc in yaml.safe_load_all(content):
            if doc:
                assert doc["kind"] == "CustomResourceDefinition", name


def test_the_four_kinds_ship_once_the_generator_exists() -> None:
    if importlib.util.find_spec("kubelambda.api.command") is None:
        pytest.skip("kubelambda.api.command (the CRD generator) is not built yet; crds/ is empty")
    rendered = render_scenario("defaults")
    kinds = {
        d["spec"]["names"]["kind"]
        for d in rendered
        if d["kind"] == "CustomResourceDefinition" and d["spec"]["group"] == "kubelambda.dev"
    }
    assert kinds == {"Function", "Version", "Alias", "EventSourceMapping"}, (
        f"run `make crds` and `{SYNC}`"
    )
