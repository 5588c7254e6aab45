"""One list of runtimes, read by the model (and CRD), dev mode, the chart and the docs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from kubelambda.api.function import FunctionSpec
from kubelambda.api.runtimes import NODE_RUNTIMES, RUNTIMES, TABLE, base_image, node_major
from kubelambda.operator.config import ConfigError, parse_pairs
from kubelambda.runtime.toolchains import judge

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "kubelambda"
RUNTIME_TOKEN = re.compile(r"\b(?:python3\.\d+|nodejs\d+\.x|provided\.al\d+)\b")


def test_the_model_and_the_crd_accept_exactly_the_list() -> None:
    schema = FunctionSpec.model_json_schema(by_alias=True)
    runtime = schema["properties"]["runtime"]
    enum = next(branch["enum"] for branch in runtime["anyOf"] if "enum" in branch)
    assert tuple(enum) == RUNTIMES
    crd = yaml.safe_load((ROOT / "crds" / "functions.kubelambda.dev.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert tuple(spec["properties"]["runtime"]["enum"]) == RUNTIMES


def test_the_chart_has_an_image_for_each_runtime_and_its_schema_allows_them() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert list(values["runtimes"]) == list(RUNTIMES)
    assert {r: spec["image"] for r, spec in values["runtimes"].items()} == {
        r: base_image(r) for r in RUNTIMES
    }
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert list(schema["properties"]["runtimes"]["properties"]) == list(RUNTIMES)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_dev_mode_runs_every_runtime_of_the_list(runtime: str) -> None:
    node = (node_major(runtime) or 22, 0, 0)
    assert judge(runtime, "Zip", python=(3, 11), node=node).refusal is None


def test_the_operator_takes_an_image_flag_for_each_runtime_and_no_other() -> None:
    flags = [f"{r}={base_image(r)}" for r in RUNTIMES]
    assert parse_pairs("--runtime-image", flags) == {r: base_image(r) for r in RUNTIMES}
    with pytest.raises(ConfigError, match="unknown runtime 'java21'"):
        parse_pairs("--runtime-image", ["java21=public.ecr.aws/lambda/java:21"])


def test_dev_mode_refuses_with_a_reason_and_a_fix() -> None:
    missing = judge("nodejs20.x", "Zip", python=(3, 11), node=None).refusal
    assert missing is not None and "no `node` is on PATH" in missing and "install" in missing
    old = judge("nodejs20.x", "Zip", python=(3, 11), node=(16, 20, 0)).refusal
    assert old == "nodejs20.x needs Node.js 18 or later; found v16.20.0"
    image = judge("python3.12", "Image", python=(3, 11), node=None).refusal
    assert image is not None and image.startswith("packageType Image needs cluster mode")
    assert judge("java21", "Zip", python=(3, 11), node=None).refusal is not None
    note = judge("nodejs24.x", "Zip", python=(3, 11), node=(20, 1, 0)).note
    assert note == "nodejs24.x functions run on the local Node.js v20.1.0"
    assert judge("python3.11", "Zip", python=(3, 11), node=None) == judge(
        "provided.al2", "Zip", python=(3, 11), node=None
    )


def test_the_docs_name_only_runtimes_of_the_list() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    docs += [ROOT / "gateway" / "README.md", ROOT / "operator" / "README.md"]
    for path in docs:
        unknown = set(RUNTIME_TOKEN.findall(path.read_text())) - set(RUNTIMES)
        assert not unknown, f"{path.name} names runtimes that are not served: {unknown}"
    reference = (ROOT / "docs" / "resources.md").read_text()
    for info in TABLE:
        assert f"| `{info.name}` | `{info.base_image}` |" in reference
    assert set(NODE_RUNTIMES) <= set(RUNTIMES)
