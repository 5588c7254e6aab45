"""The operator's flags: RUNTIME=VALUE pairs, ranges, and the command's own refusals."""

from __future__ import annotations

import pytest

from kubelambda.cli import main
from kubelambda.operator.config import ConfigError, OperatorConfig, parse_counts, parse_pairs


def test_runtime_pairs_are_parsed_and_checked() -> None:
    assert parse_pairs("--runtime-image", ["python3.12=a/b:1", "nodejs22.x=c@sha256:x"]) == {
        "python3.12": "a/b:1",
        "nodejs22.x": "c@sha256:x",
    }
    assert parse_counts("--warm-pool", ["python3.12=3"]) == {"python3.12": 3}
    for bad, message in [
        ("python3.12", "RUNTIME=VALUE"),
        ("python9=img", "unknown runtime"),
        ("=img", "RUNTIME=VALUE"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_pairs("--runtime-image", [bad])
    with pytest.raises(ConfigError, match="whole number"):
        parse_counts("--warm-pool", ["python3.12=-1"])


def test_config_ranges() -> None:
    with pytest.raises(ConfigError, match="agent-image"):
        OperatorConfig(agent_image="")
    with pytest.raises(ConfigError, match="generic-memory"):
        OperatorConfig(agent_image="i", generic_memory=64)
    with pytest.raises(ConfigError):
        OperatorConfig(agent_image="i", max_age=0)
    config = OperatorConfig(agent_image="i", namespaces=("a",))
    assert config.serves("a") and not config.serves("b")
    assert OperatorConfig(agent_image="i").serves("anything")


def test_the_operator_command_refuses_bad_flags(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["operator", "--standalone", "--agent-image=i"]) == 2
    assert "--namespace" in capsys.readouterr().err
    assert main(["operator", "--namespace=a", "--agent-image=i"]) == 2
    assert "--standalone or --leader-election" in capsys.readouterr().err
    elect = ["operator", "--namespace=a", "--leader-election=l", "--agent-image=i"]
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert main(elect) == 2
    assert "--leader-election-namespace" in capsys.readouterr().err
    assert main([*elect, "--leader-election-namespace=x", "--lease-duration=1"]) == 2
    assert "--lease-duration" in capsys.readouterr().err
    args = ["operator", "--namespace=a", "--standalone", "--agent-image=i", "--warm-pool=py=1"]
    assert main(args) == 2
    assert "unknown runtime 'py'" in capsys.readouterr().err


def test_the_gateway_command_refuses_what_is_not_built(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gateway"]) == 2
    assert "kubelambda dev" in capsys.readouterr().err
    assert main(["gateway", "--cluster", "--auth=oauth"]) == 2
    assert "use none, sigv4, kubernetes or sigv4,kubernetes" in capsys.readouterr().err
