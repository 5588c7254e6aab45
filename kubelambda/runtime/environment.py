"""One execution environment: a Runtime API server, one runtime process and its lifecycle.

`start()` brings up the Runtime API and a generic warm shim; `specialize(spec)` fetches the code
and releases the shim (init then runs; its errors reach the next invoke); `invoke(req)` serves
one invocation at a time with Lambda's deadline, START/END/REPORT lines and log tail; a timeout
or a dead runtime resets the environment, and the next invoke shows the re-init's Init Duration.
Usable in-process (dev mode) and behind the agent's control API (cluster mode). The runtime is
this process's child (`process.RuntimeProcess`) or, given `shared` folders, runs in a separate
runtime container released through a shim (`container.ContainerLink`): one lifecycle for both.
Each init phase is an `init.InitPhase`; the state (`EnvState`) is the one record of whether an
invocation is running. Our Python bootstrap reaches the Runtime API over the pipe channel
(`channel.py`, `channel="pipe"`, the default): the shim's socketpair, or in a runtime container a
Unix socket in the shared handshake folder the Python shim's released child connects to; every
other runtime (awslambdaric, custom runtimes, images, wrappers) uses HTTP at `address`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from pathlib import Path

from kubelambda.runtime import errors
from kubelambda.runtime.cgroup import CgroupTree
from kubelambda.runtime.channel import PipeChannel, attach
from kubelambda.runtime.code import CodeCache
from kubelambda.runtime.container import ContainerLink
from kubelambda.runtime.errors import (
    EnvironmentBusy,
    EnvironmentStateError,
    InitFailure,
    Status,
)
from kubelambda.runtime.init import InitPhase
from kubelambda.runtime.invocation import decode_client_context, next_headers
from kubelambda.runtime.placement import CpuPlacement, Place
from kubelambda.runtime.platform_log import LogSink, PlatformLog
from kubelambda.runtime.prepare import SharedDirs, prepare
from kubelambda.runtime.process import RuntimeHandle, RuntimeProcess
from kubelambda.runtime.release import Channel, Release
from kubelambda.runtime.report import stdout_sink
from kubelambda.runtime.server import Ending, PendingInvocation, RuntimeApi
from kubelambda.runtime.spec import EnvironmentSpec, EnvState, InvokeRequest, InvokeResult
from kubelambda.runtime.stream import ResponseStream

START_TIMEOUT = 30.0  # seconds for a shim to come up warm
_TAKEN = (EnvState.INITIALIZING, EnvState.READY, EnvState.BUSY)  # a specialization holds it


class Environment:
    """One Lambda execution environment; see the module docstring for its lifecycle."""

    def __init__(
        self,
        runtime: str,
        *,
        work_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        log_sink: LogSink = stdout_sink,
        code_cache: CodeCache | None = None,
        init_timeout: float = 10.0,
        stop_grace: float = 2.0,
        python: str = sys.executable,
        shared: SharedDirs | None = None,
        cgroups: CgroupTree | None = None,
        channel: Channel = "pipe",
        start_timeout: float = START_TIMEOUT,
        defer_closing: bool = False,
        placement: CpuPlacement | None = None,
    ) -> None:
        self.runtime = runtime
        # Dev mode's gateway: END, REPORT and Max Memory Used are written just after the
        # answer goes out; in the agent they travel with the answer (`platform_log.py`).
        self._log = PlatformLog(
            log_sink,
            level=lambda: self._spec.system_log_level if self._spec else None,
            measure=self._measure,
            defer=defer_closing,
        )
        # Dev mode: which CPUs the runtime runs on, set as each invocation starts.
        self._placement = placement
        self._place: Place | None = None  # where the current runtime process is (None: as born)
        # A runtime container may start long after the agent (its image still pulling).
        self._start_timeout = start_timeout
        # Our Python bootstrap's carrier for the Runtime API (`channel.py`); every other
        # runtime, and a runtime container, speaks HTTP to `address` regardless.
        self.channel: Channel = channel
        self._pipe: PipeChannel | None = None
        self._attaching: asyncio.Task[None] | None = None  # a runtime container's connection
        self.work_dir = Path(work_dir)
        self._cache = code_cache or CodeCache(self.work_dir / "code-cache")
        self._stop_grace = stop_grace
        self._python = python
        self._cgroups = cgroups  # set: each runtime process gets its own cgroup under it
        # Set: the runtime runs in its own container, released through a shim (container.py).
        self._shared = shared
        self._link: ContainerLink | None = None
        self._api = RuntimeApi(
            host, port, on_ready=self._on_ready, on_init_error=self._on_init_error
        )
        self._state = EnvState.STARTING
        self._spec: EnvironmentSpec | None = None
        self._release: Release | None = None
        self._proc: RuntimeHandle | None = None
        self._init = InitPhase(
            runtime,
            init_timeout,
            emit=self._log.emit,
            info=self._log.platform,
            kill=self._kill,
            settled=self._init_settled,
        )
        self._reinit_task: asyncio.Task[None] | None = None
        self._inflight: PendingInvocation | None = None
        self._max_rss_kb = 0
        self.created_at = time.monotonic()
        self.last_used_at = self.created_at
        self.invocations = 0

    # -- what the gateway reads -------------------------------------------------------------
    @property
    def state(self) -> EnvState:
        return self._state

    @property
    def spec(self) -> EnvironmentSpec | None:
        return self._spec

    @property
    def address(self) -> str:
        return self._api.address

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def carrier(self) -> Channel:
        """How the current runtime reaches the Runtime API: `pipe` once our bootstrap has
        connected over the pipe channel, else `http`."""
        return "pipe" if self._pipe is not None else "http"

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.alive and self._state != EnvState.STOPPED

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Serve the Runtime API and bring up a generic warm runtime process (no code yet)."""
        if self._state != EnvState.STARTING or self._proc is not None:
            raise EnvironmentStateError(f"environment already {self._state}")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        await self._api.start()
        try:
            if self._shared is not None:
                self._link = ContainerLink(
                    self._shared.handshake, on_output=self._log.emit, on_channel=self._on_channel
                )
                self._link.open()
            proc = self._spawn()
            if not await asyncio.wait_for(proc.wait_warm(), self._start_timeout):
                code = await asyncio.wait_for(asyncio.shield(proc.exited), self._start_timeout)
                raise RuntimeError(f"the {self.runtime} shim exited while starting ({code})")
        except BaseException:
            await self.stop()
            self._state = EnvState.FAILED
            raise
        self._state = EnvState.WARM

    async def specialize(self, spec: EnvironmentSpec) -> None:
        """Fetch code and layers, write the function's environment and release the shim."""
        if self._state != EnvState.WARM or self._proc is None:
            raise EnvironmentStateError(f"cannot specialize an environment that is {self._state}")
        self._state = EnvState.INITIALIZING
        try:
            prepared = await prepare(
                spec,
                cache=self._cache,
                work_dir=self.work_dir,
                runtime_api=self._api.address,
                python=self._python,
                shared=self._shared,
                channel=self.channel,
            )
        except BaseException:
            self._state = EnvState.WARM if self.alive else EnvState.FAILED
            raise
        self._spec, self._release = spec, prepared.message
        # Provisioned concurrency: the first init runs ahead of any call, so no REPORT shows it.
        self._begin_init(ahead=spec.initialization_type == "provisioned-concurrency")
        if prepared.launch.mode == "missing":
            self._proc.kill()
            self._init.fail(InitFailure("spawn", detail=prepared.launch.detail))
            return
        await self._hand_over(self._proc, prepared.message)

    async def invoke(
        self, request: InvokeRequest, stream: ResponseStream | None = None
    ) -> InvokeResult:
        """Run one invocation; raises EnvironmentBusy at once if another one is running.

        With `stream`, a response the runtime streams goes there as it comes (the result's
        payload is then empty and `streamed` is set); a buffered one stays in the result.
        """
        if self._state == EnvState.BUSY:
            raise EnvironmentBusy("the environment is serving another invocation")
        if self._spec is None or self._state in (EnvState.STOPPED, EnvState.FAILED):
            raise EnvironmentStateError(f"cannot invoke an environment that is {self._state}")
        client_context = decode_client_context(request.client_context)
        self._state = EnvState.BUSY
        try:
            return await self._invoke(self._spec, request, client_context, stream)
        finally:
            self.invocations += 1
            self.last_used_at = time.monotonic()
            if self._state == EnvState.BUSY:  # not stopped meanwhile
                self._state = EnvState.READY if self._init.done else EnvState.INITIALIZING

    async def retire(self) -> None:
        """Stop, but only if never specialized: the operator's side of the lock a
        specialization takes (whichever comes first wins; the other gets
        EnvironmentStateError). A stopped, failed or still starting one retires too, so a
        deletion that failed can be retried."""
        if self._state == EnvState.STOPPED:
            return
        if self._spec is not None or self._state in _TAKEN:
            raise EnvironmentStateError(f"cannot retire an environment that is {self._state}")
        await self.stop()

    async def stop(self) -> None:
        """Graceful: SIGTERM the runtime's process group, SIGKILL it after the grace period."""
        if self._state == EnvState.STOPPED:
            return
        self._log.settle()
        self._state = EnvState.STOPPED
        if self._reinit_task is not None:
            self._reinit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reinit_task
        if self._init.pending:
            self._init.fail(InitFailure("exit", exit_status=-15))
        inflight = self._inflight
        if inflight is not None and not inflight.outcome.done():
            inflight.outcome.set_result(Ending("exit", returncode=-15))
        proc = self._proc
        if proc is not None:
            await proc.terminate(self._stop_grace)
        self._detach()
        if self._link is not None:
            self._link.close()
        await self._api.close()

    # -- invocation -------------------------------------------------------------------------
    async def _invoke(
        self,
        spec: EnvironmentSpec,
        request: InvokeRequest,
        client_context: str | None,
        stream: ResponseStream | None,
    ) -> InvokeResult:
        self._log.settle()  # the last invocation's END and REPORT come before this START
        init = self._init.future
        assert init is not None, "a specialized environment always has an init"
        if not init.done():
            await asyncio.shield(init)
        failure = init.result()
        init_ms = self._init.take_duration()
        rid = request.request_id
        self._log.begin(spec, rid, request.log_tail)
        if failure is not None:
            body, error_type = errors.init_failure_body(failure, rid)
            result = self._close(spec, rid, body, 0.0, init_ms, "error", error_type)
            self._reinit()  # Lambda re-runs a failed init for every invoke
            return result
        epoch = time.time()
        deadline_ms = int((epoch + spec.timeout) * 1000)
        invocation = PendingInvocation(
            rid, request.payload, next_headers(request, deadline_ms, client_context), stream
        )
        loop = asyncio.get_running_loop()
        self._inflight = invocation
        placement = self._placement
        pid = self._proc.pid if placement is not None and self._proc is not None else None
        if placement is not None and pid is not None:
            self._place = placement.enter(pid, self._place)
        started = time.perf_counter()
        timer = loop.call_later(spec.timeout, self._on_timeout, invocation)
        self._api.dispatch(invocation)
        try:
            outcome = await invocation.outcome
        finally:
            timer.cancel()
            self._inflight = None
            if placement is not None and pid is not None:
                placement.leave()
        duration_ms = (time.perf_counter() - started) * 1000
        proc = self._proc
        # Only a runtime that exited can have been OOM-killed (its cgroup's counter is a read).
        oom = outcome.kind == "exit" and proc is not None and proc.oom_killed()
        kind = errors.ending_kind(outcome, oom)
        # "error": the function failed, the platform did not (no Status in REPORT).
        if kind == "response" or kind == "error":
            failed = kind == "error"
            if self._log.deferring:
                result = self._log.close_later(
                    spec, rid, outcome.body, duration_ms, init_ms, self._max_rss_kb, failed
                )
            else:
                rss = self._measure()
                result = self._log.close(
                    spec, rid, outcome.body, duration_ms, init_ms, rss, function_error=failed
                )
            result.streamed = outcome.streamed
            return result
        self._measure()
        if kind == "too_large":
            body = errors.response_too_large_body(outcome.size)
            return self._close(
                spec, rid, body, duration_ms, init_ms, "error", "Function.ResponseSizeTooLarge"
            )
        if kind == "oom":  # Lambda kills it: the next invoke gets a fresh runtime
            self._kill()
            self._max_rss_kb = max(self._max_rss_kb, spec.memory_size * 1024)
        self._api.abandon()
        if kind == "timeout":
            self._log.emit(errors.timeout_message(rid, spec.timeout, time.time()))
            body = errors.timeout_body(rid, spec.timeout, time.time())
            result = self._close(
                spec, rid, body, duration_ms, init_ms, "timeout", "Sandbox.Timedout"
            )
        else:
            body, error_type = errors.ended_body(kind, rid, outcome.returncode)
            result = self._close(spec, rid, body, duration_ms, init_ms, "error", error_type)
        self._reinit()  # the runtime was killed or died: the next invoke gets a fresh one
        return result

    def _close(
        self,
        spec: EnvironmentSpec,
        rid: str,
        payload: bytes,
        duration_ms: float,
        init_ms: float | None,
        status: Status,
        error_type: str,
    ) -> InvokeResult:
        """END and REPORT now for an invocation the platform ended (the result is Unhandled)."""
        return self._log.close(
            spec, rid, payload, duration_ms, init_ms, self._max_rss_kb, status, error_type
        )

    def _measure(self) -> int:
        """Emit what the handler printed (it belongs before END); the memory peak, read now."""
        proc = self._proc
        if proc is not None and proc.alive:
            proc.flush_partial()
            self._max_rss_kb = max(self._max_rss_kb, proc.max_rss_kb())
        return self._max_rss_kb

    def _on_timeout(self, invocation: PendingInvocation) -> None:
        if invocation.outcome.done():
            return
        proc = self._proc
        if proc is not None:
            self._max_rss_kb = max(self._max_rss_kb, proc.max_rss_kb())
        self._kill()
        invocation.outcome.set_result(Ending("timeout"))

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()

    # -- init and re-init -------------------------------------------------------------------
    def _spawn(self) -> RuntimeHandle:
        proc: RuntimeHandle
        if self._link is not None:
            proc = self._link.spawn()
        else:
            proc = RuntimeProcess(
                cwd=self.work_dir,
                on_output=self._log.emit,
                python=self._python,
                cgroups=self._cgroups,
            )
        self._proc = proc
        self._place = None
        if self._placement is not None and proc.pid is not None:
            self._place = self._placement.started(proc.pid)
        proc.exited.add_done_callback(lambda _: self._on_exit(proc))
        return proc

    def _begin_init(self, *, ahead: bool = False) -> None:
        self._log.settle()
        self._detach()  # the previous generation's channel, if any
        self._api.reset()
        self._init.begin(self._spec.log_format if self._spec else "Text", ahead=ahead)

    def _on_ready(self) -> None:
        self._init.ready()

    def _on_init_error(self, body: bytes, header: str | None) -> None:
        if self._init.pending:
            error_type = errors.error_type_of(body, header)
            self._init.fail(InitFailure("posted", body, error_type=error_type))

    def _init_settled(self) -> None:
        if self._state == EnvState.INITIALIZING:
            self._state = EnvState.READY  # a failed init is reported by the next invoke

    def _reinit(self) -> None:
        """Replace the runtime process with a fresh one for the same function, at once."""
        release = self._release
        if self._state == EnvState.STOPPED or release is None:
            return
        if self._state != EnvState.BUSY:
            self._state = EnvState.INITIALIZING
        self._begin_init()  # on the call path, not ahead: its REPORT shows the Init Duration
        old = self._proc
        if old is not None and old.alive:
            old.kill()
        if release["mode"] == "missing":
            self._init.fail(InitFailure("spawn", detail=release.get("detail", "")))
            return
        try:
            proc = self._spawn()
        except OSError as exc:
            self._init.fail(InitFailure("spawn", detail=f"cannot start the runtime: {exc}"))
            return
        self._reinit_task = asyncio.get_running_loop().create_task(self._hand_over(proc, release))

    async def _hand_over(self, proc: RuntimeHandle, message: Release) -> None:
        """Release `proc`; with the pipe channel, serve the Runtime API on its socketpair."""
        sock = await proc.release(message)
        if sock is not None:
            await self._attach(proc, sock)

    def _on_channel(self, proc: RuntimeHandle, sock: socket.socket) -> None:
        """A runtime container's released runtime connected to the pipe channel's socket."""
        self._attaching = asyncio.get_running_loop().create_task(self._attach(proc, sock))

    async def _attach(self, proc: RuntimeHandle, sock: socket.socket) -> None:
        if proc is not self._proc or self._state == EnvState.STOPPED:
            sock.close()  # replaced or stopped meanwhile
            return
        self._detach()
        self._pipe = await attach(self._api, sock)

    def _detach(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None

    def _on_exit(self, proc: RuntimeHandle) -> None:
        code = proc.exited.result()
        proc.close()
        if proc is not self._proc or proc.expected_exit or self._state == EnvState.STOPPED:
            return
        if self._init.pending:
            self._init.fail(InitFailure("exit", exit_status=code))
            return
        inflight = self._inflight
        if inflight is not None and not inflight.outcome.done():
            inflight.outcome.set_result(Ending("exit", returncode=code))
            return
        if self._state == EnvState.WARM:
            self._state = EnvState.FAILED
        elif self._init.succeeded:
            self._reinit()  # died while idle: have a fresh runtime ready for the next call
