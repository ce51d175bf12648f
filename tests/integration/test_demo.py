"""The README's first command: `python -m lab demo` shows a real freeze detected and failed
over, and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys

from rootreq import require_root

from lab.scratchfs import loop_backing_files, mount_points


def test_demo_detects_a_real_freeze_and_fails_over():
    require_root()
    loops_before, mounts_before = set(loop_backing_files()), mount_points()
    result = subprocess.run(
        [sys.executable, "-m", "lab", "demo", "--yes"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "loop-mounted ext4" in out
    assert out.index("LOCKUP_SUSPECTED") < out.index("LOCKUP_CONFIRMED")
    assert "failover proposed" in out
    assert "failover COMPLETED" in out
    assert "demo-1: demote (group mail, epoch 1)" in out
    assert "demo-2: promote (group mail, epoch 1)" in out
    assert set(loop_backing_files()) == loops_before
    assert mount_points() == mounts_before
