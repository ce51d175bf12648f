"""An agent with a valid certificate cannot flood the audit log or the controller.

A real controller process over mutual TLS, calls made with a real agent certificate.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from clusterkit import FAST_CONTROLLER

from controller.api.refusals import WINDOW_SECONDS
from hangwatch.ids import new_ulid
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster, wait_for

FLOOD = 300
LIMITS = {"agent_calls_per_second": 2.0, "agent_burst": 5}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path, {**FAST_CONTROLLER, "limits": LIMITS}, pki=tmp_path / "pki")
    c.start_controller()
    yield c
    c.stop()


def audit_rows(cluster: LocalCluster, allowed: int) -> list[tuple[str, str, str, str]]:
    db = sqlite3.connect(cluster.workdir / "controller-data" / "controller.db", timeout=10)
    try:
        return db.execute(
            "SELECT actor, action, target, detail FROM audit WHERE allowed = ? ORDER BY seq",
            (allowed,),
        ).fetchall()
    finally:
        db.close()


def as_agent(cluster: LocalCluster, host: str) -> agent_grpc.AgentServiceStub:
    return agent_grpc.AgentServiceStub(cluster.channel("agent", host))


def test_a_flood_of_refused_calls_is_one_entry_then_one_summary(cluster: LocalCluster):
    """Before: each refusal was written before any limit: one agent heartbeating for
    other hosts' ids added 10 400 audit rows in 8 s."""
    stub = as_agent(cluster, "web1")
    started = time.monotonic()
    for i in range(FLOOD):
        host = "\x1b[2Jevil" if i == 0 else f"other{i}"
        with pytest.raises(grpc.RpcError) as refused:
            stub.Heartbeat(agent_pb.HeartbeatRequest(host_id=host, boot_id="b"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert time.monotonic() - started < WINDOW_SECONDS
    first = audit_rows(cluster, allowed=0)
    assert len(first) == 1
    assert first[0][:3] == ("web1", "Heartbeat", "\x1b[2Jevil")
    summaries = wait_for(
        lambda: audit_rows(cluster, allowed=0)[1:], WINDOW_SECONDS + 10, "the summary entry"
    )
    assert len(audit_rows(cluster, allowed=0)) == 2
    assert summaries[0][3].startswith(f"refused: {FLOOD - 1} more like it in ")  # type: ignore[index]
    assert f"other{FLOOD - 1}" in summaries[0][3]  # type: ignore[index]
    # The refused caller's host id, as `audit` shows it: escaped, not raw.
    table = cluster.ctl("audit")
    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout and "\\x1b[2Jevil" in table.stdout


def test_register_and_command_results_are_rate_limited(cluster: LocalCluster):
    """Before: Register and ReportCommandResult were never rate limited."""
    stub = as_agent(cluster, "web1")
    codes = []
    for _ in range(20):
        try:
            stub.Register(agent_pb.RegisterRequest(host_id="web1", boot_id="b"), timeout=10)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 10
    time.sleep(5 / LIMITS["agent_calls_per_second"])  # the bucket refills
    result = pb.CommandResult(command_id="c1", host_id="web1", status=1)
    for _ in range(20):
        try:
            stub.ReportCommandResult(agent_pb.ReportCommandResultRequest(result=result), timeout=10)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())
    assert codes[20:].count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 10


def test_a_repeated_command_result_is_acknowledged_and_does_nothing(cluster: LocalCluster):
    """Before: every repeat of a STALE_EPOCH result wrote an audit entry (and ran a
    coordinator pass)."""
    command_id = new_ulid()
    db = sqlite3.connect(cluster.workdir / "controller-data" / "controller.db", timeout=10)
    with db:
        db.execute(
            "INSERT INTO commands (id, host_id, created_at, body) VALUES (?, 'web1', ?, ?)",
            (command_id, time.time(), pb.Command(id=command_id, group="g").SerializeToString()),
        )
    db.close()
    stub = as_agent(cluster, "web1")
    result = pb.CommandResult(
        command_id=command_id,
        host_id="web1",
        status=pb.COMMAND_STATUS_STALE_EPOCH,
        epoch=3,
        known_epoch=4,
    )
    for _ in range(5):
        stub.ReportCommandResult(agent_pb.ReportCommandResultRequest(result=result), timeout=10)
    stale = [r for r in audit_rows(cluster, allowed=0) if r[1] == "refuse stale epoch"]
    assert len(stale) == 1
