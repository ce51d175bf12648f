"""Shared fixtures. The lockup ones make real kernel state (see lockups.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lockups import LoopFs, loop_fs, sweep_leftovers
from rootreq import require_root

from lab.scratchfs import MKFS


@pytest.fixture
def root() -> None:
    require_root()


@pytest.fixture
def loop_mount(request: pytest.FixtureRequest) -> Iterator[LoopFs]:
    """A fresh loop filesystem; ext4 unless parametrized indirectly with a fstype."""
    fstype = getattr(request, "param", "ext4")
    require_root([MKFS[fstype][0]])
    with loop_fs(fstype) as fs:
        yield fs


@pytest.fixture(scope="session", autouse=True)
def _lockup_safety_net() -> Iterator[None]:
    """Fails the session loudly, after cleaning up, if a lockup fixture leaked."""
    yield
    leftovers = sweep_leftovers()
    if leftovers:
        pytest.fail(
            "lockup fixtures left these behind (now cleaned up): " + "; ".join(leftovers),
            pytrace=False,
        )
