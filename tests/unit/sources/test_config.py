"""A mapping's poller settings: defaults per source, compiled filters, errors that name fields."""

from __future__ import annotations

from typing import Any

import pytest

from kubelambda.api.resources import EventSourceMapping, parse_resource
from kubelambda.sources.config import ConfigError, poller_config


def mapping(**spec: Any) -> EventSourceMapping:
    doc = {
        "apiVersion": "kubelambda.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "m", "namespace": "team"},
        "spec": {"functionName": "fn:live", **spec},
    }
    resource = parse_resource(doc)
    assert isinstance(resource, EventSourceMapping)
    return resource


REDIS = {"redis": {"url": "redis://127.0.0.1:6379/0", "stream": "s"}}


def test_stream_defaults_and_target() -> None:
    config = poller_config(mapping(source=REDIS, startingPosition="LATEST"))
    assert config.kind == "redis"
    assert config.limits.size == 100 and config.limits.window == 0
    assert config.policy.max_retries == -1 and config.policy.max_age is None
    assert config.invoke_name == "team.fn" and config.qualifier == "live"
    assert config.key == "team/m" and config.concurrency == 1
    assert config.uid == poller_config(mapping(source=REDIS, startingPosition="LATEST")).uid


def test_stream_policy_from_the_spec() -> None:
    config = poller_config(
        mapping(
            source=REDIS,
            startingPosition="TRIM_HORIZON",
            bisectBatchOnFunctionError=True,
            maximumRetryAttempts=2,
            maximumRecordAgeInSeconds=60,
            functionResponseTypes=["ReportBatchItemFailures"],
            batchSize=7,
            maximumBatchingWindowInSeconds=3,
        )
    )
    assert config.policy.bisect and config.policy.max_retries == 2 and config.policy.max_age == 60
    assert config.report_item_failures
    assert config.limits.size == 7 and config.limits.window == 3


def test_sqs_concurrency_from_scaling_config() -> None:
    source = {"sqs": {"queueUrl": "http://127.0.0.1:1/000000000000/q"}}
    config = poller_config(mapping(source=source, scalingConfig={"maximumConcurrency": 5}))
    assert config.concurrency == 5 and config.limits.size == 10


def test_a_bad_filter_names_the_field() -> None:
    bad = {"filters": [{"pattern": '{"a": [{"numeric": [">"]}]}'}]}
    with pytest.raises(ConfigError, match=r"filterCriteria\.filters\[0\]\.pattern\.a"):
        poller_config(mapping(source=REDIS, startingPosition="LATEST", filterCriteria=bad))


def test_schedule_timezone_is_checked() -> None:
    source = {"schedule": {"expression": "rate(1 minute)", "timezone": "Nowhere/City"}}
    with pytest.raises(ConfigError, match=r"source\.schedule: timezone"):
        poller_config(mapping(source=source))
    ok = poller_config(mapping(source={"schedule": {"expression": "rate(5 minutes)"}}))
    assert ok.schedule is not None and ok.schedule.period == 300
