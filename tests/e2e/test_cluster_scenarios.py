"""The operator issue's cluster scenarios, run unchanged against a real kind cluster.

The test functions are the ones in tests/cluster/test_operator_path.py (there they run against
the harness's real control plane and process kubelet); only the `stack` fixture differs.
Outside `make kind-e2e` every test here is skipped, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.test_operator_path import *  # noqa: F403  (the scenarios themselves)
from tests.e2e.kind_stack import KindStack, e2e_settings

SETTINGS = e2e_settings()
pytestmark = pytest.mark.skipif(
    SETTINGS is None,
    reason="needs a real cluster: run `make kind-e2e` (Docker and kind required)",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KindStack]:
    assert SETTINGS is not None
    running = KindStack(tmp_path_factory.mktemp("kind"), SETTINGS)
    running.start()
    try:
        yield running
    finally:
        running.stop()
