"""Shared fixtures. The lockup ones make real kernel state (see lockups.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from etcdkit import EtcdCluster, etcd_cluster
from lockups import LoopFs, loop_fs, sweep_leftovers
from rootreq import require_root
from storekit import BACKENDS, Stores

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


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One real three-member etcd cluster for the session; tests keep apart by prefix."""
    with etcd_cluster(tmp_path_factory.mktemp("etcd")) as cluster:
        yield cluster


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Stores of each backend (the test runs once per backend) on fresh data."""
    etcd = request.getfixturevalue("etcd") if request.param == "etcd" else None
    opened = Stores(request.param, tmp_path, etcd)
    yield opened
    opened.close()


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
