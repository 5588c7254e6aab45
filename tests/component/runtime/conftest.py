"""Fixtures for the execution-environment component tests: real runtime processes, and a check
that none of them outlives its test."""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from kubelambda.runtime.provider import ProcessProvider

PR_SET_CHILD_SUBREAPER = 36


def _set_subreaper(on: bool) -> None:
    # Orphans of this test (a runtime's own children) then stay visible as our descendants.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)


def _descendants() -> list[psutil.Process]:
    try:
        children: list[psutil.Process] = psutil.Process().children(recursive=True)
        return children
    except psutil.Error:
        return []


def _reap_zombies(known: set[int]) -> None:
    for child in psutil.Process().children():
        if child.pid in known:
            continue
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            pass


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail the test if any process it started is still running after it (bounded wait)."""
    _set_subreaper(True)
    before = {p.pid for p in _descendants()}
    yield
    deadline = time.monotonic() + 5.0
    leaked: list[psutil.Process] = []
    while True:
        _reap_zombies(before)
        leaked = []
        for proc in _descendants():
            if proc.pid in before:
                continue
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    leaked.append(proc)
            except psutil.NoSuchProcess:
                pass
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)  # polling the condition "no descendants left", bounded above
    described = []
    for proc in leaked:
        try:
            described.append(f"{proc.pid} {proc.cmdline()}")
            proc.kill()
        except psutil.Error:
            pass
    _set_subreaper(False)
    assert not leaked, f"processes outlived the test: {described}"


@pytest.fixture
def logs() -> list[str]:
    return []


@pytest.fixture
async def provider(tmp_path: Path, logs: list[str]) -> AsyncIterator[ProcessProvider]:
    prov = ProcessProvider(tmp_path / "envs", log_sink=logs.append, stop_grace=1.0)
    try:
        yield prov
    finally:
        await prov.stop_all()
