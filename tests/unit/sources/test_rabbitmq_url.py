"""The RabbitMQ poller's broker URL: the mapping's credentials and virtual host are applied."""

from __future__ import annotations

import asyncio

import aiormq
import pytest

from kubelambda.sources.readers.rabbitmq_reader import broker_url


def parsed(url: object) -> tuple[str, str | None, str | None]:
    """What the AMQP client will use: (vhost, user, password); it is built on a loop."""

    async def read() -> tuple[str, str | None, str | None]:
        connection = aiormq.Connection(str(url))
        return connection.vhost, connection.url.user, connection.url.password

    return asyncio.run(read())


def test_a_url_alone_is_kept() -> None:
    url = "amqp://guest:guest@127.0.0.1:5672/"
    assert str(broker_url(url, None, None, None)) == url
    assert parsed(broker_url(url, None, None, None)) == ("/", "guest", "guest")


def test_the_secrets_credentials_replace_the_urls() -> None:
    url = broker_url("amqp://old:old@broker:5672/", "app", "s3cret", None)
    assert parsed(url) == ("/", "app", "s3cret")


@pytest.mark.parametrize(
    ("vhost", "expected"), [("orders", "orders"), ("/", "/"), ("team/a", "team/a")]
)
def test_the_virtual_host_replaces_the_urls_path(vhost: str, expected: str) -> None:
    url = broker_url("amqp://guest:guest@broker:5672/other", None, None, vhost)
    assert parsed(url)[0] == expected


def test_characters_that_mean_something_in_a_url_survive() -> None:
    url = broker_url("amqps://broker", "user@corp", "p:a/s@s", "v h")
    assert parsed(url) == ("v h", "user@corp", "p:a/s@s")
