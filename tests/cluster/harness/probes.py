"""Container probes for the process kubelet: httpGet, tcpSocket and exec, with k8s thresholds.

Timings follow the probe spec, but `initialDelaySeconds` and `periodSeconds` are capped by the
kubelet (`ProbeTiming`), so that readiness flips in a fraction of a second in tests rather than
after the default 10 s period. Startup and liveness probes keep their failure window (threshold
x period): with a shorter period they need proportionally more failures, so a slow start on a
busy machine is not killed sooner than a real kubelet would kill it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class ProbeTiming:
    max_initial_delay: float = 0.5
    max_period: float = 0.2


def probe_port(port: int | str, container: JsonDict) -> int:
    """A probe port is a number or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for entry in container.get("ports") or ():
        if entry.get("name") == port:
            return int(entry["containerPort"])
    raise ValueError(f"probe port {port!r} is not a port of the container")


async def _http_get(spec: JsonDict, host: str, container: JsonDict, limit: float) -> bool:
    port = probe_port(spec["port"], container)
    path = spec.get("path", "/")
    scheme = spec.get("scheme", "HTTP").lower()
    headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or ()}
    url = f"{scheme}://{spec.get('host') or host}:{port}{path}"
    client_timeout = aiohttp.ClientTimeout(total=limit)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.get(url, headers=headers, allow_redirects=False, ssl=False) as response,
    ):
        return 200 <= response.status < 400


async def _tcp(spec: JsonDict, host: str, container: JsonDict, limit: float) -> bool:
    port = probe_port(spec["port"], container)
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(spec.get("host") or host, port), limit
    )
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return True


async def run_exec(argv: list[str], env: Mapping[str, str], cwd: str, limit: float) -> bool:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        return await asyncio.wait_for(proc.wait(), limit) == 0
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        return False


ExecRunner = Callable[[list[str], float], Awaitable[bool]]


async def probe_once(
    probe: JsonDict, host: str, container: JsonDict, exec_runner: ExecRunner
) -> bool:
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            return await _http_get(probe["httpGet"], host, container, timeout)
        if "tcpSocket" in probe:
            return await _tcp(probe["tcpSocket"], host, container, timeout)
        if "exec" in probe:
            return await exec_runner(list(probe["exec"]["command"]), timeout)
    except (OSError, TimeoutError, aiohttp.ClientError, ValueError):
        return False
    raise ValueError(f"unsupported probe: {sorted(probe)}")


def _thresholds(probe: JsonDict, timing: ProbeTiming, keep_window: bool) -> tuple[float, int, int]:
    """(period, successes needed, failures needed) under the kubelet's caps."""
    spec_period = float(probe.get("periodSeconds", 10))
    period = min(spec_period, timing.max_period)
    needed_fail = int(probe.get("failureThreshold", 3))
    if keep_window:
        needed_fail = math.ceil(needed_fail * spec_period / period)
    return period, int(probe.get("successThreshold", 1)), needed_fail


async def run_startup(
    probe: JsonDict, timing: ProbeTiming, check: Callable[[], Awaitable[bool]]
) -> bool:
    """The startup probe: True at its first success, False once its failure window is spent."""
    await asyncio.sleep(min(float(probe.get("initialDelaySeconds", 0)), timing.max_initial_delay))
    period, _, needed_fail = _thresholds(probe, timing, keep_window=True)
    for _ in range(needed_fail):
        if await check():
            return True
        await asyncio.sleep(period)
    return False


async def run_probe(
    probe: JsonDict,
    timing: ProbeTiming,
    check: Callable[[], Awaitable[bool]],
    on_result: Callable[[bool], None],
    *,
    keep_window: bool = False,
) -> None:
    """Probe forever, reporting a result each time a success or failure threshold is reached."""
    await asyncio.sleep(min(float(probe.get("initialDelaySeconds", 0)), timing.max_initial_delay))
    period, needed_ok, needed_fail = _thresholds(probe, timing, keep_window)
    ok_streak = fail_streak = 0
    while True:
        if await check():
            ok_streak, fail_streak = ok_streak + 1, 0
            if ok_streak >= needed_ok:
                on_result(True)
        else:
            ok_streak, fail_streak = 0, fail_streak + 1
            if fail_streak >= needed_fail:
                on_result(False)
        await asyncio.sleep(period)


async def run_container_probes(
    spec: JsonDict,
    timing: ProbeTiming,
    check: Callable[[JsonDict], Callable[[], Awaitable[bool]]],
    on_started: Callable[[bool], None],
    on_ready: Callable[[bool], None],
    kill: Callable[[], None],
) -> None:
    """A container's probes as the kubelet's probe manager runs them: the startup probe first (no
    other probe runs before it succeeds; its failure kills), then readiness and liveness side by
    side (a liveness failure kills; no readiness probe means ready)."""
    on_started(False)
    startup = spec.get("startupProbe")
    if startup and not await run_startup(startup, timing, check(startup)):
        kill()
        return
    on_started(True)
    running = []
    if spec.get("readinessProbe"):
        probe = spec["readinessProbe"]
        running.append(run_probe(probe, timing, check(probe), on_ready))
    else:
        on_ready(True)
    if spec.get("livenessProbe"):
        probe = spec["livenessProbe"]

        def on_alive(ok: bool) -> None:
            if not ok:
                kill()

        running.append(run_probe(probe, timing, check(probe), on_alive, keep_window=True))
    await asyncio.gather(*running)
