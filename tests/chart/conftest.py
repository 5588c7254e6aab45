"""Fixtures of the chart tests: one parametrized render per values scenario."""

from __future__ import annotations

import pytest

from tests.chart.chart_helpers import SCENARIOS, Manifest, render_scenario


@pytest.fixture(params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def manifests(scenario: str) -> list[Manifest]:
    return render_scenario(scenario)
