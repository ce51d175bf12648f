"""Fixtures for tests that run real controller and agent processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterkit import FAST_CONTROLLER, Admin
from receivers import Receiver

from lab.localcluster import LocalCluster


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path, dict(FAST_CONTROLLER))
    yield c
    c.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for proc in c.procs:
            print(f"----- {proc.name} log -----\n{proc.log_text()[-4000:]}")


@pytest.fixture
def admin(cluster: LocalCluster) -> Iterator[Admin]:
    a = Admin(cluster.address)
    yield a
    a.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback (started by the test, once its statuses are set)."""
    r = Receiver()
    yield r
    r.stop()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keeps each phase's report on the item so fixtures can print process logs on failure."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
