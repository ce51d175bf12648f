"""Devices that are slow, or stop completing requests, under a real agent.

A frozen filesystem leaves its device idle; these devices are busy instead. The slow
one completes every request, hundreds of milliseconds late: that is load, never a
lockup (docs/design.md#2-slow-is-not-hung). The stuck one keeps requests in flight
and completes none: a lockup, to be confirmed within the detection budget and
cleared once released. Both are loop devices over the FUSE server of lab.slowdisk,
with ext4 on top.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
from integration.test_detection import events, mount_state, start
from lockups import slow_loop_fs, sweep_leftovers, wait_until
from rootreq import require_root

from agent.config import DetectionSettings, ProbeSettings
from agent.procfs.diskstats import DiskStats, read_diskstats
from hangwatch import pbtime
from lab import scratchfs
from lab.slowdisk import SlowFs

# Per request of the slow device: hundreds of milliseconds, enough that the canary
# probe (create, write, fsync: six requests in a row) stays stuck past confirm_after,
# so only the device's completions stand between this load and a confirmation.
SLOW_DELAY = 0.8
SLOW_SECONDS = 40.0
# The next probe starts within one interval of the hold and confirms confirm_after
# later; one second more for the evaluation tick and delivery to the controller.
DETECTION_BUDGET = ProbeSettings().interval_seconds + DetectionSettings().confirm_after_seconds + 1

# Appends 1 MiB and fsyncs it, again and again, starting over at 32 MiB: the sustained
# writes of a mail store (new allocations, so each journal commit carries their data).
WRITER = """
import os, sys, time
path, until = sys.argv[1], time.monotonic() + float(sys.argv[2])
block = os.urandom(1 << 20)
with open(path, "wb") as f:
    while time.monotonic() < until:
        if f.tell() >= 32 << 20:
            f.seek(0)
            f.truncate()
        f.write(block)
        f.flush()
        os.fsync(f.fileno())
"""


@contextlib.contextmanager
def slow_device(size_mb: int | None = None) -> Iterator[SlowFs]:
    require_root(["fusermount3"])
    with slow_loop_fs("ext4", size_mb) as slow:
        yield slow


@contextlib.contextmanager
def writers(mount: Path, count: int, seconds: float) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(mount / f"w{i}"), str(seconds)])
        for i in range(count)
    ]
    try:
        yield procs
    finally:
        # A writer blocked on a held device dies once the fixture releases it.
        for p in procs:
            p.kill()


def diskstats(slow: SlowFs) -> DiskStats:
    return read_diskstats().devices[slow.fs.kernel_name]


def longest_probe_in_flight(admin, mount: str, procs: list[subprocess.Popen[bytes]]) -> float:
    """The longest the agent's heartbeats showed a probe in flight, until `procs` end."""
    longest = 0.0
    while any(p.poll() is None for p in procs):
        host = admin.hosts().get("h1")
        for health in host.health if host else []:
            if health.mount == mount and health.HasField("probe_in_flight_for"):
                longest = max(longest, pbtime.seconds(health.probe_in_flight_for))
        time.sleep(0.2)
    return longest


def test_slow_device_under_sustained_writes_is_never_confirmed(cluster):
    with slow_device(size_mb=256) as slow:
        mount = str(slow.fs.mount)
        _, admin = start(cluster, "h1", [slow.fs.mount])
        slow.disk.set_delay(SLOW_DELAY)
        before = diskstats(slow)
        with writers(slow.fs.mount, 2, SLOW_SECONDS) as procs:
            stuck_for = longest_probe_in_flight(admin, mount, procs)
            for p in procs:
                assert p.wait(60) == 0
        after = diskstats(slow)
        # A lockup confirmed from the load's last moments would come within this.
        time.sleep(DetectionSettings().confirm_after_seconds + 1)
        assert events(admin, "LOCKUP_CONFIRMED", mount) == []
        assert mount_state(admin, "h1", mount) in ("HEALTH_STATE_OK", "HEALTH_STATE_SUSPECT")
        # The device was slow and kept completing: every request took the delay or more.
        writes = after.writes - before.writes
        assert writes >= SLOW_SECONDS / 2
        assert (after.write_ms - before.write_ms) / writes >= SLOW_DELAY * 1000
        # ... and a probe stayed stuck long enough to confirm, had the device been idle.
        print(f"longest probe in flight on the slow device: {stuck_for:.1f}s")
        assert stuck_for >= DetectionSettings().confirm_after_seconds
        admin.close()


def test_stuck_device_is_confirmed_in_budget_and_cleared_after_release(cluster):
    with slow_device(size_mb=64) as slow:
        mount = str(slow.fs.mount)
        _, admin = start(cluster, "h1", [slow.fs.mount])
        since = max((e.cursor for e in events(admin)), default=0)
        with writers(slow.fs.mount, 1, 60) as (writer,):
            held_at = time.time()
            slow.disk.hold()
            # Requests reach the device and stay there: in flight on the loop device.
            wait_until(lambda: slow.disk.status().all_held or None, 5, "requests held")
            stuck = diskstats(slow)
            assert stuck.in_flight > 0

            def confirmed() -> float | None:
                found = [e for e in events(admin, "LOCKUP_CONFIRMED", mount) if e.cursor > since]
                return pbtime.seconds(found[0].received_at) if found else None

            confirmed_at = wait_until(confirmed, 30, "LOCKUP_CONFIRMED", interval=0.05)
            print(f"hold -> LOCKUP_CONFIRMED at the controller: {confirmed_at - held_at:.2f}s")
            assert confirmed_at - held_at <= DETECTION_BUDGET
            lockup = events(admin, "LOCKUP_CONFIRMED", mount)[0]
            assert "completed no I/O" in lockup.summary
            now = diskstats(slow)
            assert now.completions == stuck.completions and now.in_flight > 0
            assert psutil.Process(writer.pid).status() == psutil.STATUS_DISK_SLEEP

            slow.disk.release()
            wait_until(lambda: events(admin, "LOCKUP_CLEARED", mount) or None, 30, "CLEARED")
        kinds = [e.kind for e in events(admin, mount=mount) if e.kind.startswith("LOCKUP_")]
        assert kinds == [
            "LOCKUP_SUSPECTED",
            "LOCKUP_CONFIRMED",
            "LOCKUP_RECOVERING",
            "LOCKUP_CLEARED",
        ]
        wait_until(
            lambda: mount_state(admin, "h1", mount) == "HEALTH_STATE_OK" or None,
            5,
            "the heartbeat to say OK",
        )
        admin.close()


def test_safety_net_releases_and_takes_down_a_slow_device_left_behind():
    require_root(["fusermount3"])
    with contextlib.ExitStack() as stack:
        slow = stack.enter_context(slow_loop_fs("ext4", 64))
        with writers(slow.fs.mount, 1, 60) as (writer,):
            slow.disk.hold()
            wait_until(lambda: slow.disk.status().all_held or None, 5, "requests held")
        # Killed, the writer stays blocked until the device answers, as a failed test's
        # processes would when the session's safety net runs.
        assert psutil.Process(writer.pid).status() == psutil.STATUS_DISK_SLEEP
        found = sweep_leftovers()
        assert writer.wait(10) == -signal.SIGKILL
        assert not [f for f in found if "busy" in f or "survived" in f], found
        assert f"mount {slow.fs.mount}" in found
        assert any(f.startswith(f"loop device {slow.fs.loop_device} ") for f in found)
        mounted = scratchfs.mount_points()
        assert str(slow.fs.mount) not in mounted and str(slow.disk.mountpoint) not in mounted
        assert str(slow.fs.image) not in scratchfs.loop_backing_files().values()
        assert not psutil.pid_exists(slow.disk.pid) or (
            psutil.Process(slow.disk.pid).status() == psutil.STATUS_ZOMBIE
        )
        # The fixture's own cleanup, after the sweep, finds nothing left to undo.
