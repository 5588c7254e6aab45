"""Issue 12, defect 3: the agents' control API is authenticated and function pods get a
NetworkPolicy in every chart configuration (all namespaces served, none named, included)."""

from __future__ import annotations

import pytest

from tests.chart.chart_helpers import (
    SCENARIOS,
    Manifest,
    containers,
    find,
    of_kind,
    parse,
    render_scenario,
    template,
)

FUNCTION_POOL = "kubelambda.dev/pool"


def _function_policies(docs: list[Manifest]) -> list[Manifest]:
    return [
        p
        for p in of_kind(docs, "NetworkPolicy")
        if any(
            e.get("key") == FUNCTION_POOL
            for e in p["spec"]["podSelector"].get("matchExpressions", [])
        )
    ]


def test_all_namespaces_with_none_named_still_gets_a_function_pod_policy() -> None:
    result = template(sets=["functionNamespaces=null", "networkPolicy.functionNamespaces=null"])
    assert result.returncode == 0, result.output()
    docs = parse(result.stdout)
    operator = find(docs, "Deployment", "-operator")
    assert "--all-namespaces" in containers(operator["spec"]["template"]["spec"])[0]["args"]
    policies = _function_policies(docs)
    assert {p["metadata"]["namespace"] for p in policies} == {"default"}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_operator_and_gateway_share_the_agent_key(name: str) -> None:
    docs = render_scenario(name)
    secret = find(docs, "Secret", "-agent-key")
    assert secret["data"]["key"]
    for deployment in ("-operator", "-gateway"):
        pod = find(docs, "Deployment", deployment)["spec"]["template"]["spec"]
        container = containers(pod)[0]
        assert "--agent-key-file=/etc/kubelambda/agent-key/key" in container["args"]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["agent-key"]["mountPath"] == "/etc/kubelambda/agent-key"
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["agent-key"]["secret"]["secretName"] == secret["metadata"]["name"]
