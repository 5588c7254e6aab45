"""Which asyncConfig, destination and dead-letter target apply (Lambda's scoping), and the
queue URL forms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubelambda.api.resources import parse_resource
from kubelambda.gateway.asyncq.backends import default_url, open_queue
from kubelambda.gateway.asyncq.jetstream import JetStreamQueue
from kubelambda.gateway.asyncq.scope import event_config
from kubelambda.gateway.asyncq.sqlite import SqliteQueue
from kubelambda.serving.catalog import Catalog, build_catalog
from kubelambda.serving.names import FunctionRef


def manifest(kind: str, name: str, spec: dict[str, Any]) -> Any:
    return parse_resource(
        {
            "apiVersion": "kubelambda.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }
    )


FN = {"runtime": "python3.11", "handler": "a.b", "code": {"inline": {"a.py": "x"}}}
FUNCTION_ASYNC = {
    "maximumRetryAttempts": 1,
    "maximumEventAgeInSeconds": 600,
    "destinations": {
        "onSuccess": {"url": "http://127.0.0.1:1/latest-ok"},
        "onFailure": {"sqs": "http://127.0.0.1:1/000000000000/latest-failed"},
    },
}
VERSION_ASYNC = {"maximumRetryAttempts": 2, "destinations": {"onFailure": {"nats": "v1.failed"}}}
ALIAS_ASYNC = {"maximumRetryAttempts": 0, "destinations": {"onFailure": {"function": "audit"}}}


def catalog() -> Catalog:
    return build_catalog(
        [
            manifest(
                "Function",
                "f",
                {
                    **FN,
                    "asyncConfig": FUNCTION_ASYNC,
                    "deadLetterConfig": {"url": "http://127.0.0.1:1/latest-dlq"},
                },
            ),
            manifest(
                "Version",
                "f-1",
                {
                    "functionName": "f",
                    "version": 1,
                    "function": {
                        **FN,
                        "asyncConfig": VERSION_ASYNC,
                        "deadLetterConfig": {"nats": "v1.dlq"},
                    },
                },
            ),
            manifest("Version", "f-2", {"functionName": "f", "version": 2, "function": FN}),
            manifest(
                "Alias",
                "live",
                {"functionName": "f", "functionVersion": "1", "asyncConfig": ALIAS_ASYNC},
            ),
            manifest("Alias", "plain", {"functionName": "f", "functionVersion": "1"}),
        ]
    )


def config_for(qualifier: str | None, age_cap: float | None = None) -> Any:
    return event_config(catalog().resolve(FunctionRef("default", "f", qualifier), 0.5), age_cap)


def test_unqualified_uses_the_functions_config() -> None:
    config = config_for(None)
    assert (config.limits.max_retries, config.limits.max_age) == (1, 600)
    assert config.destination("Success").url is not None
    assert config.destination("RetriesExhausted").sqs is not None
    assert config.destination("EventAgeExceeded").sqs is not None
    assert config.dead_letter.url is not None


def test_a_version_uses_its_frozen_config_with_lambdas_defaults() -> None:
    config = config_for("1")
    assert (config.limits.max_retries, config.limits.max_age) == (2, 21600)
    assert config.destination("Success") is None
    assert config.destination("RetriesExhausted").nats == "v1.failed"
    assert config.dead_letter.nats == "v1.dlq"
    bare = config_for("2")
    assert (bare.limits.max_retries, bare.on_success, bare.on_failure, bare.dead_letter) == (
        2,
        None,
        None,
        None,
    )


def test_an_alias_with_its_own_config_overrides_the_version() -> None:
    config = config_for("live")
    assert config.limits.max_retries == 0
    assert config.destination("RetriesExhausted").function == "audit"
    assert config.dead_letter.nats == "v1.dlq", "the dead-letter target is the version's"


def test_an_alias_without_config_uses_its_versions() -> None:
    assert config_for("plain") == config_for("1")


def test_age_cap_only_shortens() -> None:
    assert config_for(None, age_cap=5).limits.max_age == 5
    assert config_for(None, age_cap=10_000).limits.max_age == 600


def test_queue_urls(tmp_path: Path) -> None:
    absolute = open_queue(f"sqlite:///{tmp_path}/q.db")
    assert isinstance(absolute, SqliteQueue) and absolute.path == tmp_path / "q.db"
    relative = open_queue("sqlite:///state/q.db")
    assert isinstance(relative, SqliteQueue) and relative.path == Path("state/q.db")
    bare = open_queue(str(tmp_path / "x.db"))
    assert isinstance(bare, SqliteQueue) and bare.path == tmp_path / "x.db"
    assert open_queue(default_url(tmp_path)).describe() == default_url(tmp_path)
    js = open_queue("nats://a:4222,nats://b:4222?replicas=3&ack_wait=2.5&stream=S")
    assert isinstance(js, JetStreamQueue)
    assert (js.servers, js.replicas, js.ack_wait, js.stream) == (
        ["nats://a:4222", "nats://b:4222"],
        3,
        2.5,
        "S",
    )


@pytest.mark.parametrize(
    "url", ["redis://x", "sqlite://", "sqlite:///", "nats://:4222", "nats://h:1?colour=red"]
)
def test_unusable_queue_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        open_queue(url)
