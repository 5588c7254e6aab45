"""Choosing a queue backend from a URL.

- `sqlite:///relative/path.db` or `sqlite:////absolute/path.db` (SQLAlchemy's convention: the
  path follows the third slash); a bare path without a scheme also means SQLite.
- `nats://HOST:PORT[,nats://HOST2:PORT...][?stream=NAME&prefix=SUBJECTS&replicas=3&ack_wait=10]`:
  JetStream. `stream` and `prefix` (the subjects' first tokens) let several gateways or
  clusters share one NATS deployment without seeing each other's events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from kubelambda.gateway.asyncq.queue import DEFAULT_MAX_DELIVERIES, AsyncQueue


def default_url(state: Path) -> str:
    return f"sqlite:///{(state / 'async' / 'events.sqlite3').resolve()}"


def open_queue(
    url: str,
    *,
    max_deliveries: int = DEFAULT_MAX_DELIVERIES,
    clock: Callable[[], float] = time.time,
) -> AsyncQueue:
    """A backend for `url`, not yet started. Raises ValueError for an unusable URL."""
    if url.startswith(("nats://", "tls://")):
        head, _, query = url.partition("?")
        servers = [s for s in head.split(",") if s]
        for server in servers:
            if not urlsplit(server).hostname:
                raise ValueError(f"queue URL {url!r}: {server!r} has no host")
        options = {k: v[-1] for k, v in parse_qs(query).items()}
        unknown = set(options) - {"stream", "prefix", "replicas", "ack_wait"}
        if unknown:
            raise ValueError(f"queue URL {url!r}: unknown option(s) {', '.join(sorted(unknown))}")
        from kubelambda.gateway.asyncq.jetstream import JetStreamQueue

        return JetStreamQueue(
            servers,
            stream=options.get("stream", "KUBELAMBDA_ASYNC"),
            prefix=options.get("prefix", "kubelambda.async"),
            replicas=int(options.get("replicas", "1")),
            ack_wait=float(options.get("ack_wait", "10")),
            max_deliveries=max_deliveries,
            clock=clock,
        )
    if url.startswith("sqlite://"):
        if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise ValueError(f"queue URL {url!r}: use sqlite:///PATH (sqlite:////abs/path)")
        path = Path(url[len("sqlite:///") :])
    elif "://" in url:
        raise ValueError(f"queue URL {url!r}: use sqlite:///PATH or nats://HOST:PORT")
    else:
        path = Path(url)
    from kubelambda.gateway.asyncq.sqlite import SqliteQueue

    return SqliteQueue(path, max_deliveries=max_deliveries, clock=clock)
