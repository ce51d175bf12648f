"""The one executable runner, with real executables written here: what fence agents,
veto hooks and package queries get from it (the hook view is in test_hooks.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from lockups import task_state, wait_until

from controller.config import FenceSettings
from controller.failover.fencing import fence
from hangwatch.executables import (
    DRAIN_GRACE,
    ExecResult,
    run_executable,
    run_executable_blocking,
)

pytestmark = pytest.mark.timeout(60)

ENV = {"PATH": os.defpath}


def script(tmp_path: Path, body: str, name: str = "run") -> Path:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def kill_pid_in(path: Path) -> None:
    """Cleanup of a background child a script wrote its pid for."""
    if path.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(path.read_text()), signal.SIGKILL)


def test_a_fence_agent_leaving_a_child_on_its_output_succeeds_within_the_drain_grace(
    tmp_path: Path,
) -> None:
    """Real fence agents may leave a helper behind (an ssh control master, say) that
    still holds their stdout: the exit counts, not the end of the output."""
    got, helper = tmp_path / "stdin", tmp_path / "helper.pid"
    agent = script(
        tmp_path,
        f"cat > {got}; echo 'Success: Powered OFF'; sleep 300 & echo $! > {helper}; exit 0",
    )
    settings = FenceSettings(
        host="mail1", agent=str(agent), options={"ip": "10.0.0.9"}, timeout_seconds=10.0
    )
    started = time.monotonic()
    try:
        result = asyncio.run(fence(settings, "mail1", "mail", 7, "f3"))
        elapsed = time.monotonic() - started
        assert psutil.pid_exists(int(helper.read_text()))  # it was still there, holding stdout
    finally:
        kill_pid_in(helper)
    assert (result.ok, result.exit_code, result.timed_out) == (True, 0, False)
    assert elapsed < DRAIN_GRACE + 1.5
    assert result.describe() == "exit 0: Success: Powered OFF"
    assert got.read_text() == "action=off\nip=10.0.0.9\nnodename=mail1\n"


def test_a_fence_agent_that_cannot_start_says_why(tmp_path: Path) -> None:
    settings = FenceSettings(host="mail1", agent=str(tmp_path / "fence_gone"))
    result = asyncio.run(fence(settings, "mail1", "mail", 7, "f3"))
    assert (result.ok, result.exit_code, result.timed_out) == (False, 127, False)
    assert result.describe() == (
        f"cannot run fence agent {tmp_path / 'fence_gone'}: No such file or directory"
    )


def test_a_timed_out_run_keeps_its_output_and_says_so(tmp_path: Path) -> None:
    run = script(tmp_path, "echo 'checking change calendar'; sleep 300")
    result = asyncio.run(run_executable([str(run)], timeout=0.5, env=ENV))
    assert (result.ok, result.timed_out, result.exit_code) == (False, True, -9)
    assert result.output_tail == "checking change calendar\n"
    assert result.describe() == "killed at the 0.5s timeout"


def test_stdin_is_empty_unless_given_and_a_child_that_never_reads_it_does_not_block(
    tmp_path: Path,
) -> None:
    got = tmp_path / "stdin"
    reads = script(tmp_path, f"cat > {got}; exit 4", "reads")
    ignores = script(tmp_path, "echo done", "ignores")

    async def go() -> tuple[ExecResult, ExecResult]:
        empty = await run_executable([str(reads)], timeout=10, env=ENV)
        assert got.read_bytes() == b""
        # Far more than a pipe holds: the writer must give up when the child exits.
        unread = await run_executable([str(ignores)], timeout=10, env=ENV, stdin=b"x" * 2**20)
        return empty, unread

    empty, unread = asyncio.run(go())
    assert (empty.exit_code, empty.describe()) == (4, "exit 4")
    assert (unread.ok, unread.output_tail) == (True, "done\n")
    assert unread.duration < 5


def test_cancelling_the_caller_kills_the_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    run = script(tmp_path, f"sleep 300 & echo $! > {pids}; sleep 300")

    async def go() -> None:
        task = asyncio.create_task(run_executable([str(run)], timeout=60, env=ENV))
        while not pids.exists() or not pids.read_text().strip():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(go())
        background = int(pids.read_text())
        wait_until(lambda: task_state(background)[0] in ("", "Z") or None, 2.0, "its child to die")
    finally:
        kill_pid_in(pids)


def test_the_blocking_form_works_on_a_thread_that_runs_an_event_loop(tmp_path: Path) -> None:
    """The agent reads its inventory at start, on the event loop's thread."""
    run = script(tmp_path, "echo 'e2fsprogs ii 1.47.0-2'")

    async def on_the_loop() -> ExecResult:
        return run_executable_blocking([str(run)], timeout=10, env=ENV)

    result = asyncio.run(on_the_loop())
    assert (result.ok, result.output_tail) == (True, "e2fsprogs ii 1.47.0-2\n")
