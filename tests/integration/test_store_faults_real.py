"""Storage faults with a real controller process: a damaged file, an empty one, a full disk."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from clusterkit import FAST_CONTROLLER, Admin, scrape
from grpc_health.v1 import health_pb2, health_pb2_grpc
from lockups import loop_fs, wait_until

from hangwatch import pbtime
from hangwatch.ids import new_ulid
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster, free_port

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
AGENT_SERVICE = "hangwatch.v1.AgentService"
ADMIN_SERVICE = "hangwatch.v1.AdminService"


def _start_on(data_dir: Path) -> subprocess.CompletedProcess[str]:
    argv = ["--insecure", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(data_dir)]
    return subprocess.run(
        [sys.executable, "-m", "controller", *argv],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_an_empty_database_file_stops_the_controller(tmp_path):
    """An empty file used to become a fresh store without a word. Fails before the fix."""
    (tmp_path / "controller.db").touch()
    result = _start_on(tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"database {tmp_path / 'controller.db'} is empty (0 bytes)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_damaged_database_stops_the_controller_naming_the_way_out(tmp_path):
    """A damaged file gave a traceback that did not name it. Fails before the fix."""
    (tmp_path / "controller.db").write_bytes(b"SQLite format 3\0" + b"\x13" * 8192)
    result = _start_on(tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"database {tmp_path / 'controller.db'} is damaged" in result.stderr
    assert "restore it from a backup, or move it" in result.stderr
    assert "Traceback" not in result.stderr


def _batch(host: str, first_seq: int, size: int) -> agent_pb.ReportEventsRequest:
    now = time.time()
    return agent_pb.ReportEventsRequest(
        host_id=host,
        events=[
            pb.Event(
                id=new_ulid(now),
                host_id=host,
                host_seq=first_seq + n,
                mount="/srv/mail",
                kind="SYNTHETIC_TEST",
                severity=pb.SEVERITY_INFO,
                occurred_at=pbtime.timestamp(now),
                summary="x" * 1000,
            )
            for n in range(size)
        ],
    )


def _fill(directory: Path) -> Path:
    """Writes a file until the file system has no block left (ENOSPC); returns it."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        for chunk in (1 << 20, 4096):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        os.fsync(f.fileno())
    return filler


class Reporter:
    """ReportEvents over real gRPC; keeps every acknowledged id."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self._stub = agent_grpc.AgentServiceStub(self._channel)
        self.health = health_pb2_grpc.HealthStub(self._channel)
        self.acked: list[str] = []
        self._seq = 0

    def report(self, size: int = 20) -> grpc.RpcError | None:
        self._seq += size
        try:
            response = self._stub.ReportEvents(_batch("mail-1", self._seq, size), timeout=10)
        except grpc.RpcError as exc:
            return exc
        self.acked.extend(response.acked_ids)
        return None

    def status(self, service: str) -> int:
        return int(self.health.Check(health_pb2.HealthCheckRequest(service=service)).status)

    def close(self) -> None:
        self._channel.close()


@pytest.fixture
def small_fs(root: None) -> Iterator[Path]:
    with loop_fs("ext4", size_mb=16) as fs:
        yield fs.mount


def test_disk_full_is_resource_exhausted_shown_and_recovered(tmp_path, small_fs):
    """With the data directory's file system full, every write used to answer UNKNOWN
    "cannot rollback - no transaction is active" and log a traceback per call. Now it is
    RESOURCE_EXHAUSTED "database or disk is full", logged once, NOT_SERVING in the health
    status and 1 in hangwatch_store_full; once space is back writes succeed again without
    a restart, and every acknowledged event is stored. Fails before the fix."""
    metrics_port = free_port()
    cluster = LocalCluster(
        tmp_path, {**FAST_CONTROLLER, "metrics": {"listen": f"127.0.0.1:{metrics_port}"}}
    )
    (small_fs / "data").mkdir()
    (tmp_path / "controller-data").symlink_to(small_fs / "data")
    reporter = None
    try:
        cluster.start_controller()
        reporter = Reporter(cluster.address)
        assert reporter.report() is None
        filler = _fill(small_fs)

        def refused() -> grpc.RpcError | None:
            return reporter.report()

        error = wait_until(refused, 60, "a write refused for lack of space", interval=0)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
        assert error.details() == "database or disk is full"
        for _ in range(5):
            again = reporter.report()
            assert again is not None and again.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reporter.status("") == NOT_SERVING
        assert reporter.status(AGENT_SERVICE) == NOT_SERVING
        assert reporter.status(ADMIN_SERVICE) == SERVING
        metrics = scrape(metrics_port)
        assert metrics["hangwatch_store_full"].samples[0].value == 1
        assert metrics["hangwatch_store_writes_refused"].samples[0].value >= 6

        filler.unlink()
        wait_until(lambda: reporter.report() is None or None, 30, "a write to succeed again")
        wait_until(lambda: reporter.status("") == SERVING or None, 10, "SERVING again")
        assert reporter.status(AGENT_SERVICE) == SERVING
        assert scrape(metrics_port)["hangwatch_store_full"].samples[0].value == 0

        admin = Admin(cluster.address)
        stored = {e.id for e in admin.events()}
        admin.close()
        assert set(reporter.acked) <= stored, "an acknowledged event was lost"
        log = cluster.procs[0].log_text()
        assert log.count("writes are refused (RESOURCE_EXHAUSTED)") == 1, log
        assert "writes succeed again" in log
        assert "Traceback" not in log, log
        assert "cannot rollback" not in log
    finally:
        if reporter is not None:
            reporter.close()
        cluster.stop()
