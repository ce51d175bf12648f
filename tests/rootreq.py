"""Gate for tests that need root and real kernel objects (loop devices, fsfreeze).

A CI job that is meant to run them sets HANGWATCH_REQUIRE_ROOT_TESTS=1, so a missing
privilege or tool fails the job instead of passing it silently as all-skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

BASE_TOOLS = ("losetup", "mkfs.ext4", "mount", "umount", "fsfreeze", "findmnt")


def require_root(tools: Iterable[str] = ()) -> None:
    """Skips the test without root, loop devices or `tools`; fails instead when required."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not running as root")
    if not Path("/dev/loop-control").exists():
        problems.append("no loop device support (/dev/loop-control missing)")
    missing = [t for t in (*BASE_TOOLS, *tools) if shutil.which(t) is None]
    if missing:
        problems.append(f"missing tools: {', '.join(missing)}")
    if not problems:
        return
    reason = "; ".join(problems)
    if os.environ.get("HANGWATCH_REQUIRE_ROOT_TESTS") == "1":
        pytest.fail(
            f"root tests required (HANGWATCH_REQUIRE_ROOT_TESTS=1): {reason}", pytrace=False
        )
    pytest.skip(reason)
