"""Real kernel lockups on loop devices, seen by a real agent, reported to a real controller."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterkit import Admin
from lockups import hung_task_reports, loop_fs, stuck_writer
from rootreq import require_root

from hangwatch import pbtime
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster, wait_for
from lab.scratchfs import MKFS, frozen

HEARTBEAT = 0.5
AGENT = {
    "heartbeat": {"interval_seconds": HEARTBEAT},
    "reconnect": {"initial_backoff_seconds": 0.1, "max_backoff_seconds": 1.0},
}


def events(admin: Admin, kind: str = "", mount: str = "") -> list[pb.Event]:
    flt = admin_pb.EventFilter(kind=kind, mount=mount)
    request = admin_pb.ListEventsRequest(filter=flt, page_size=1000)
    return list(admin.stub.ListEvents(request, timeout=5).events)


def mount_state(admin: Admin, host: str, mount: str) -> str:
    h = admin.hosts().get(host)
    for m in h.health if h else []:
        if m.mount == mount:
            return pb.HealthState.Name(m.state)
    return "ABSENT"


@contextlib.contextmanager
def mounts(fstype: str, count: int, size_mb: int | None = None) -> Iterator[list]:
    require_root([MKFS[fstype][0]])
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(loop_fs(fstype, size_mb)) for _ in range(count)]


def start(cluster: LocalCluster, host: str, paths: list[Path], **extra: object):
    cluster.start_controller()
    proc = cluster.start_agent(host, paths, {**AGENT, **extra})
    admin = Admin(cluster.address)
    for p in paths:
        wait_for(lambda p=p: mount_state(admin, host, str(p)) == "HEALTH_STATE_OK", 20, f"{p} OK")
    return proc, admin


@pytest.mark.parametrize("fstype", ["ext4", "xfs"])
def test_freeze_is_suspected_confirmed_and_cleared_for_that_mount_only(cluster, fstype):
    with mounts(fstype, 2) as (victim, bystander):
        _, admin = start(cluster, "h1", [victim.mount, bystander.mount])
        v, b = str(victim.mount), str(bystander.mount)
        with frozen(victim.mount):
            wait_for(lambda: events(admin, "LOCKUP_CONFIRMED", v), 30, "LOCKUP_CONFIRMED")
            wait_for(
                lambda: mount_state(admin, "h1", v) == "HEALTH_STATE_LOCKED",
                5,
                "the heartbeat to say LOCKED",
            )
            assert mount_state(admin, "h1", b) == "HEALTH_STATE_OK"
        wait_for(lambda: events(admin, "LOCKUP_CLEARED", v), 30, "LOCKUP_CLEARED")
        lockup = [e for e in events(admin, mount=v) if e.kind.startswith("LOCKUP_")]
        kinds = [e.kind for e in lockup]
        assert kinds[:2] == ["LOCKUP_SUSPECTED", "LOCKUP_CONFIRMED"]
        assert kinds[-1] == "LOCKUP_CLEARED"
        confirmed = lockup[1]
        assert confirmed.severity == pb.SEVERITY_CRITICAL
        assert "completed no I/O" in confirmed.summary
        assert any(t.wchan for t in confirmed.evidence.stuck_tasks)
        assert not [e for e in events(admin, mount=b) if e.kind.startswith("LOCKUP_")]
        admin.close()


def test_kernel_hung_task_report_becomes_one_event_naming_task_mount_and_stack(cluster):
    with mounts("ext4", 1) as (fs,):
        _, admin = start(cluster, "h1", [fs.mount], kmsg={"enabled": True})
        with hung_task_reports(timeout_secs=2), frozen(fs.mount), stuck_writer(fs.mount) as w:

            def report_for_writer() -> list[pb.Event]:
                return [
                    e
                    for e in events(admin, "HUNG_TASK")
                    if any(t.pid == w.pid for t in e.evidence.stuck_tasks)
                ]

            found = wait_for(report_for_writer, 30, f"a HUNG_TASK event for pid {w.pid}")
        event = found[0]
        task = next(t for t in event.evidence.stuck_tasks if t.pid == w.pid)
        assert task.comm == "sh"
        assert event.mount == str(fs.mount)
        assert f"sh:{w.pid} blocked for more than" in event.summary
        assert "percpu_rwsem_wait" in task.stack
        # One event carries the whole report: header, state line and call trace.
        assert any("Call Trace" in line for line in event.evidence.kernel_lines)
        assert any(
            line.lstrip().startswith("percpu_rwsem_wait") for line in event.evidence.kernel_lines
        )
        admin.close()


WRITER = """
import os, sys, time
path, until = sys.argv[1], time.monotonic() + float(sys.argv[2])
block = os.urandom(1 << 20)
while time.monotonic() < until:
    with open(path, "wb") as f:
        for _ in range(8):
            f.write(block)
            f.flush()
            os.fsync(f.fileno())
"""


def test_heavy_healthy_io_never_confirms_a_lockup(cluster):
    seconds = 60
    with mounts("ext4", 1, size_mb=256) as (fs,):
        _, admin = start(cluster, "h1", [fs.mount])
        writers = [
            subprocess.Popen([sys.executable, "-c", WRITER, str(fs.mount / f"w{i}"), str(seconds)])
            for i in range(4)
        ]
        try:
            for w in writers:
                assert w.wait(seconds + 60) == 0
        finally:
            for w in writers:
                w.kill()
        assert events(admin, "LOCKUP_CONFIRMED") == []
        assert mount_state(admin, "h1", str(fs.mount)) in (
            "HEALTH_STATE_OK",
            "HEALTH_STATE_SUSPECT",
        )
        admin.close()


def test_heartbeats_continue_with_every_mount_and_the_state_dir_frozen(cluster):
    with mounts("ext4", 3) as (a, b, state_fs):
        cluster.start_controller()
        proc = cluster.start_agent(
            "h1", [a.mount, b.mount], AGENT, state_dir=state_fs.mount / "state"
        )
        admin = Admin(cluster.address)
        wait_for(
            lambda: mount_state(admin, "h1", str(a.mount)) == "HEALTH_STATE_OK", 20, "agent up"
        )
        with frozen(a.mount), frozen(b.mount), frozen(state_fs.mount):
            beats: list[float] = []
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                h = admin.hosts().get("h1")
                at = pbtime.seconds(h.last_heartbeat_at)
                if not beats or at != beats[-1]:
                    beats.append(at)
                time.sleep(0.05)
            gaps = [b2 - b1 for b1, b2 in itertools.pairwise(beats)]
            assert len(beats) >= 12 / HEARTBEAT * 0.8
            assert max(gaps) <= 2 * HEARTBEAT, gaps
            wait_for(
                lambda: (
                    mount_state(admin, "h1", str(a.mount)) == "HEALTH_STATE_LOCKED"
                    and mount_state(admin, "h1", str(b.mount)) == "HEALTH_STATE_LOCKED"
                ),
                20,
                "both mounts LOCKED",
            )
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.popen.wait(15) == 0
        admin.close()
