"""The README's first command: `python -m lab demo` shows a real freeze detected and failed
over, and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rootreq import require_root

from lab.scratchfs import loop_backing_files, mount_points


def test_demo_detects_a_real_freeze_and_fails_over():
    require_root()
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
    # Nothing of the demo's is left (other root tests may make loops meanwhile).
    scratch = os.path.join(os.path.realpath(tempfile.gettempdir()), "hangwatch-demo-")
    assert not [b for b in loop_backing_files().values() if b.startswith(scratch)]
    assert not [m for m in mount_points() if m.startswith(scratch)]
    assert not list(Path(tempfile.gettempdir()).glob("hangwatch-demo-*"))
