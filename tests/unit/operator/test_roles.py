"""Who a Function may run as (operator/functions.py `serving_refusal`), and the operator's own
namespace, which never serves functions (config.py)."""

from __future__ import annotations

from typing import Any

import pytest

from kubelambda.cli import main
from kubelambda.operator.config import ConfigError, OperatorConfig
from kubelambda.operator.functions import ASSUMABLE, refused, serving_refusal


def function(namespace: str = "team", role: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"runtime": "python3.12", "handler": "app.handler"}
    if role:
        spec["role"] = role
    return {"metadata": {"name": "f", "namespace": namespace, "generation": 3}, "spec": spec}


def account(notes: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "runner", "annotations": notes}}


def test_a_function_without_a_role_is_served() -> None:
    assert serving_refusal(function(), "kubelambda-system", None) is None


def test_a_role_must_name_a_service_account_that_opted_in() -> None:
    assert serving_refusal(function(role="runner"), None, account({ASSUMABLE: "true"})) is None
    for notes in (None, {ASSUMABLE: "yes"}, {"other": "true"}):
        why = serving_refusal(function(role="runner"), None, account(notes))
        assert why is not None and why.startswith("spec.role: ServiceAccount runner"), why
        assert ASSUMABLE in why
    missing = serving_refusal(function(role="ghost"), None, None)
    assert missing == "spec.role: ServiceAccount ghost does not exist in namespace team"


def test_the_operators_own_namespace_never_serves_functions() -> None:
    why = serving_refusal(function("kubelambda-system"), "kubelambda-system", None)
    assert why is not None and why.startswith("metadata.namespace: kubelambda-system")
    config = OperatorConfig(agent_image="i", home="kubelambda-system")
    assert config.serves("team") and not config.serves("kubelambda-system")
    with pytest.raises(ConfigError, match="--namespace=kubelambda-system"):
        OperatorConfig(agent_image="i", namespaces=("kubelambda-system",), home="kubelambda-system")


def test_the_operator_refuses_to_serve_its_own_namespace(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["operator", "--namespace=sys", "--release-namespace=sys", "--standalone"]
    assert main([*args, "--agent-image=i"]) == 2
    assert "never serves functions" in capsys.readouterr().err


def test_a_refusal_fails_the_function_naming_the_field() -> None:
    outcome = refused(function(role="runner"), "spec.role: ServiceAccount runner ...", 0.0)
    assert outcome.status["state"] == "Failed"
    assert outcome.status["stateReasonCode"] == "InvalidConfiguration"
    (ready,) = outcome.status["conditions"]
    assert ready["reason"] == "InvalidRole" and ready["status"] == "False"
    assert ready["message"].startswith("spec.role")
    assert [e.reason for e in outcome.events] == ["InvalidRole"]


def test_a_service_account_listed_in_the_values_may_be_assumed_without_the_annotation() -> None:
    config = OperatorConfig(agent_image="i", assumable_roles=frozenset({"runner", "team/batch"}))
    assert config.may_assume("team", "runner") and config.may_assume("other", "runner")
    assert config.may_assume("team", "batch") and not config.may_assume("other", "batch")
    assert not config.may_assume("team", "plain")
    assert serving_refusal(function(role="runner"), None, account(None), listed=True) is None
    # Listed or not, the account must exist and the release namespace stays closed.
    missing = serving_refusal(function(role="ghost"), None, None, listed=True)
    assert missing is not None and missing.startswith("spec.role: ServiceAccount ghost")
    home = serving_refusal(function("sys", role="runner"), "sys", account(None), listed=True)
    assert home is not None and home.startswith("metadata.namespace: sys")


@pytest.mark.parametrize("bad", ["", "/runner", "a/b/c", "team/"])
def test_a_malformed_assumable_role_fails_naming_the_flag(bad: str) -> None:
    with pytest.raises(ConfigError, match="--assumable-role"):
        OperatorConfig(agent_image="i", assumable_roles=frozenset({bad}))
