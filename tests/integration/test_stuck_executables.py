"""An executable stuck in D state on a really frozen filesystem: the caller goes on.

The agent's hook case is in test_command_stream.py; this is the controller's fence
agent through the same runner.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil
import pytest
from lockups import LoopFs, frozen, loop_gaps

from controller.config import FenceSettings
from controller.failover.fencing import fence
from hangwatch.executables import DRAIN_GRACE, KILL_GRACE, ExecResult

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]


def test_a_fence_agent_stuck_in_d_state_times_out_and_is_left_behind(
    loop_mount: LoopFs, tmp_path: Path
) -> None:
    agent = tmp_path / "fence_stuck"
    agent.write_text(
        f"#!/bin/sh\ncat >/dev/null; echo powering off; echo x > {loop_mount.mount}/x\n"
    )
    agent.chmod(0o755)
    settings = FenceSettings(host="mail1", agent=str(agent), timeout_seconds=0.5)

    async def go() -> tuple[ExecResult, float, float]:
        async with loop_gaps() as gaps:  # the caller's event loop keeps turning
            started = time.monotonic()
            result = await fence(settings, "mail1", "mail", 3, "f1")
            elapsed = time.monotonic() - started
        return result, elapsed, max(gaps)

    with frozen(loop_mount.mount):
        result, elapsed, gap = asyncio.run(go())
        left = [p for p in psutil.Process().children(recursive=True) if p.status() == "disk-sleep"]
    assert elapsed < 0.5 + KILL_GRACE + DRAIN_GRACE + 0.5
    assert gap < 0.25
    assert (result.ok, result.timed_out) == (False, True)
    assert result.output_tail == "powering off\n"
    assert result.describe().startswith("killed at the 0.5s timeout but still there")
    assert "(stuck in D state?): left behind as pid" in result.describe()
    assert len(left) == 1
    psutil.wait_procs(left, timeout=10)  # thawed: the pending SIGKILL lands
