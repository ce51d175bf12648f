"""The /proc and /sys readers on this machine's real files, around a real loop
filesystem (the `loop_mount` fixture unmounts and detaches it whatever happens)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from lockups import LoopFs, frozen, wait_until

from agent.procfs.diskstats import Activity, ProgressTracker, read_diskstats
from agent.procfs.dstate import TaskStatus, inspect_task, psutil_tasks, scan_d_state
from agent.procfs.mountinfo import find_mount, load_device_map, read_mountinfo
from agent.procfs.pressure import Pressure, read_io_pressure, stall
from agent.procfs.sysblock import read_block_devices

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]


@contextlib.contextmanager
def holder(path: Path) -> Iterator[subprocess.Popen[str]]:
    """A shell holding `path` open for appending, from outside the mount; each line
    on its stdin makes it write to the file."""
    script = 'exec 3>>"$1"; echo ready; while read -r line; do echo "$line" >&3; done'
    proc = subprocess.Popen(
        ["sh", "-c", script, "sh", str(path)],
        cwd="/",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        proc.kill()  # lands once a freeze is undone
        proc.wait(timeout=10)


def task_status(pid: int) -> TaskStatus:
    proc = psutil.Process(pid)
    return TaskStatus(pid, proc.status(), proc.create_time())


def test_mountinfo_finds_the_loop_mount(loop_mount: LoopFs):
    mount = find_mount(read_mountinfo(), str(loop_mount.mount / "some" / "file"))
    assert mount is not None
    assert mount.mount_point == str(loop_mount.mount)
    assert mount.fs_type == "ext4"
    assert mount.source == str(loop_mount.device)
    assert mount.devno == Path(f"/sys/class/block/{loop_mount.name}/dev").read_text().strip()
    assert not mount.read_only


def test_device_map_names_the_loop_device_both_ways(loop_mount: LoopFs):
    point = str(loop_mount.mount)
    dmap = load_device_map([point])
    assert dmap.monitored == (point,) and dmap.missing == ()
    assert dmap.backing_devices(point) == [loop_mount.name]
    assert dmap.mount_for_device(loop_mount.name) == point
    assert dmap.mount_for_device(str(loop_mount.device)) == point
    device = read_block_devices()[loop_mount.name]
    assert (device.parent, device.slaves) == (None, ())
    assert dmap.mount_for_device(device.devno) == point


def test_diskstats_completions_rise_after_a_write_and_fsync(loop_mount: LoopFs):
    tracker = ProgressTracker(stall_after=5.0, devices=[loop_mount.name])
    before = read_diskstats()
    tracker.update(before)
    fd = os.open(loop_mount.mount / "data", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, os.urandom(1 << 20))
        os.fsync(fd)
    finally:
        os.close(fd)
    after = read_diskstats()
    assert after.devices[loop_mount.name].writes > before.devices[loop_mount.name].writes
    report = tracker.update(after)[loop_mount.name]
    assert report.activity is Activity.ACTIVE
    assert report.completions > 0
    assert report.throughput_bytes_per_s >= (1 << 20) / report.interval


def test_a_process_holding_a_file_is_attributed_to_the_mount(loop_mount: LoopFs):
    point = str(loop_mount.mount)
    dmap = load_device_map([point])
    with holder(loop_mount.mount / "held") as proc:
        task = inspect_task(task_status(proc.pid), dmap)
    assert task is not None
    assert task.mounts == (point,)
    assert task.evidence == (f"fd/3 -> {point}/held",)
    assert not task.kernel_thread and task.runs is not None


def test_frozen_writer_is_found_in_d_state_while_its_device_is_idle(loop_mount: LoopFs):
    point = str(loop_mount.mount)
    dmap = load_device_map([point])
    tracker = ProgressTracker(stall_after=0.1, devices=[loop_mount.name])
    with holder(loop_mount.mount / "held") as proc, frozen(point):
        assert proc.stdin is not None
        proc.stdin.write("blocked\n")
        proc.stdin.flush()
        wait_until(
            lambda: True if psutil.Process(proc.pid).status() == psutil.STATUS_DISK_SLEEP else None,
            timeout=10,
            what=f"writer {proc.pid} in D state",
        )
        scan = scan_d_state(psutil_tasks(), dmap)
        tracker.update(read_diskstats())
        time.sleep(0.3)
        device = tracker.update(read_diskstats())[loop_mount.name]
    (writer,) = [t for t in scan.tasks if t.pid == proc.pid]
    assert writer.mounts == (point,)
    assert writer.wchan == "percpu_rwsem_wait"
    # The writer blocks before submitting I/O: the device is idle, not stalled.
    assert device.activity is Activity.IDLE
    assert device.in_flight == 0


def test_the_whole_process_table_scans_within_the_caps():
    scan = scan_d_state(psutil_tasks(), load_device_map())
    assert scan.listed > 10
    assert not scan.truncated and scan.skipped == 0


def test_pressure_is_readable_here():
    if not Path("/proc/pressure/io").exists():
        pytest.skip("this kernel has no PSI")
    first = read_io_pressure()
    time.sleep(0.2)
    second = read_io_pressure()
    assert isinstance(first, Pressure) and isinstance(second, Pressure)
    observed = stall(first, second)
    assert 0.0 <= observed.some <= 1.0
    assert observed.full is not None and 0.0 <= observed.full <= 1.0
