"""Bounded waiting for conditions: poll a predicate until it holds or a deadline passes.

Tests wait for state, never for time: `wait_until` polls and, on timeout, fails with what was
last observed, so a failure says what the cluster looked like rather than just "timed out".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import kubernetes

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> T:
    """Return the first truthy result of `probe()`; API 404s count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: T | kubernetes.client.ApiException | None = None
    while True:
        try:
            last = probe()
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
            last = exc
        if last and not isinstance(last, kubernetes.client.ApiException):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or probe}: last saw {last!r}"
            )
        time.sleep(interval)


def wait_gone(fetch: Callable[[], object], *, timeout: float = 10.0, what: str = "") -> None:
    """Wait until `fetch()` raises a 404 ApiException."""

    def gone() -> bool:
        try:
            fetch()
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    wait_until(gone, timeout=timeout, what=what or "the object to be gone")


def pod_ready(pod: Any) -> bool:
    """Whether a V1Pod (or a raw pod dict) has the Ready condition True."""
    if isinstance(pod, dict):
        conditions = pod.get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    conditions = (pod.status and pod.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def wait_pod_ready(
    core: kubernetes.client.CoreV1Api, namespace: str, name: str, *, timeout: float = 15.0
) -> Any:
    """Wait until the pod is Ready and return it (a V1Pod with status.podIP set)."""

    def ready() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod_ready(pod) else None

    return wait_until(ready, timeout=timeout, what=f"pod {namespace}/{name} to be Ready")


def wait_pod_phase(
    core: kubernetes.client.CoreV1Api,
    namespace: str,
    name: str,
    phase: str,
    *,
    timeout: float = 15.0,
) -> Any:
    def reached() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase == phase else None

    return wait_until(reached, timeout=timeout, what=f"pod {namespace}/{name} to be {phase}")
