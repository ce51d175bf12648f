"""D-state scan on fixture tasks (tests/fixtures/proc/storage1/<pid>), the tracker and
the signals. The process list, psutil's part, is given as TaskStatus rows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from agent.procfs.dstate import (
    BlockedTask,
    DStateScan,
    DStateTracker,
    TaskStatus,
    d_state_signals,
    device_hints,
    inspect_task,
    scan_d_state,
)
from agent.procfs.mountinfo import load_device_map
from agent.signals import Kind, StuckTask

FIXTURES = Path(__file__).parents[1] / "fixtures"
PROC = str(FIXTURES / "proc" / "storage1")
SYS = str(FIXTURES / "sys" / "storage1")
D = psutil.STATUS_DISK_SLEEP
# 1201 imap, 1302 rsync, 1403 "my (odd) prog", 1500 indexer: user tasks.
# 211 jbd2/loop3-8, 212 xfsaild/dm-0, 213 kworker flushing dm-1, 214 kworker on
# "events", 215 md0_raid1: kernel threads. 9999 has gone; 1600 is asleep.
PIDS = [1201, 1302, 1403, 1500, 211, 212, 213, 214, 215, 9999]
TASKS = [TaskStatus(pid, D, started=1000.0 + pid) for pid in PIDS]
TASKS.insert(3, TaskStatus(1600, psutil.STATUS_SLEEPING, started=1.0))


@pytest.fixture(scope="module")
def dmap():
    monitored = ["/srv/mail", "/srv/web", "/mnt/img", "/srv/mail archive"]
    return load_device_map(monitored, proc_root=PROC, sys_root=SYS)


@pytest.fixture(scope="module")
def scan(dmap):
    return scan_d_state(TASKS, dmap, proc_root=PROC)


def found(scan: DStateScan) -> dict[int, BlockedTask]:
    return {t.pid: t for t in scan.tasks}


@pytest.mark.parametrize(
    ("comm", "hints"),
    [
        ("jbd2/loop3-8", ["jbd2", "loop3-8", "loop3"]),
        ("jbd2/nvme0n1p2-", ["jbd2", "nvme0n1p2-", "nvme0n1p2"]),  # cut at 15 characters
        ("xfsaild/dm-0", ["xfsaild", "dm-0", "dm"]),
        ("md0_raid1", ["md0_raid1", "md0"]),
        ("kdmflush/253:0", ["kdmflush", "253:0"]),
        ("kworker/u8:2+flush-253:1", ["flush-253:1", "253:1", "flush"]),
        ("kworker/u8:2+loop3", ["loop3"]),
        ("kworker/7:0+events", ["events"]),  # "7:0" is the pool, not loop0
        ("kworker/3:1H-kblockd", ["kblockd"]),
        ("kworker/7:0", []),
    ],
)
def test_device_hints(comm, hints):
    assert device_hints(comm) == hints


def test_user_task_attributed_by_cwd(scan):
    imap = found(scan)[1201]
    assert imap.comm == "imap"
    assert imap.wchan == "percpu_rwsem_wait"
    assert not imap.kernel_thread
    assert imap.mounts == ("/srv/mail",)
    assert imap.evidence == ("cwd -> /srv/mail/users/alice",)
    assert imap.runs == 5123
    assert imap.started == 2201.0


def test_user_task_attributed_by_fds(scan):
    rsync = found(scan)[1302]
    # fd 5 is on /srv/mail/tmp, a tmpfs on top of /srv/mail: not /srv/mail.
    assert set(rsync.mounts) == {"/srv/web", "/srv/mail archive"}
    evidence = dict(zip(rsync.mounts, rsync.evidence, strict=True))
    assert evidence["/srv/web"] == "fd/3 -> /srv/web/htdocs/old.html (deleted)"
    assert evidence["/srv/mail archive"] == "fd/4 -> /srv/mail archive/2023.tar"


def test_unattributed_user_task_is_kept(scan):
    odd = found(scan)[1403]
    assert odd.comm == "my (odd) prog"
    assert odd.mounts == ()
    assert odd.wchan == ""  # the kernel writes "0" when it will not say


@pytest.mark.parametrize(
    ("pid", "mount"),
    [(211, "/mnt/img"), (212, "/srv/mail"), (213, "/srv/web"), (215, "/srv/web")],
)
def test_kernel_threads_attributed_by_their_name(scan, pid, mount):
    task = found(scan)[pid]
    assert task.kernel_thread
    assert task.mounts == (mount,)
    assert task.evidence == (f"comm {task.comm}",)


def test_unattributable_kernel_threads_and_gone_tasks_are_left_out(scan):
    assert set(found(scan)) == {1201, 1302, 1403, 1500, 211, 212, 213, 215}
    assert scan.listed == 11
    assert (scan.skipped, scan.truncated) == (0, False)


def test_fd_cap(dmap):
    indexer = TaskStatus(1500, D, started=1.0)
    all_fds = inspect_task(indexer, dmap, PROC, max_fds=12)
    assert all_fds is not None
    assert all_fds.mounts == ("/mnt/img",) and not all_fds.fds_capped
    none = inspect_task(indexer, dmap, PROC, max_fds=0)
    assert none is not None
    assert none.mounts == () and none.fds_capped


def test_caps_on_processes_and_blocked_tasks(dmap):
    few = scan_d_state(TASKS, dmap, proc_root=PROC, max_processes=3)
    assert (few.listed, few.truncated, len(few.tasks)) == (3, True, 3)
    capped = scan_d_state(TASKS, dmap, proc_root=PROC, max_blocked=2)
    assert [t.pid for t in capped.tasks] == [1201, 1302]
    assert capped.skipped == 8
    assert not capped.truncated


def blocked(pid: int = 1, runs: int | None = 10, mounts=("/srv/mail",), started=5.0):
    return BlockedTask(
        pid=pid,
        started=started,
        comm=f"task{pid}",
        wchan="percpu_rwsem_wait",
        kernel_thread=False,
        mounts=mounts,
        evidence=tuple(f"cwd -> {m}" for m in mounts),
        runs=runs,
    )


def track(tracker: DStateTracker, now: float, *tasks: BlockedTask) -> list[float]:
    dated = tracker.update(DStateScan(tasks, listed=len(tasks), skipped=0, truncated=False), now)
    return [t.blocked_seconds for t in dated]


def test_tracker_dates_tasks_from_first_sight():
    tracker = DStateTracker()
    assert track(tracker, 100.0, blocked(1)) == [0.0]
    assert track(tracker, 130.0, blocked(1), blocked(2)) == [30.0, 0.0]
    assert track(tracker, 160.0, blocked(1), blocked(2)) == [60.0, 30.0]


def test_a_task_that_ran_between_scans_starts_afresh():
    # Busy, not stuck: in D state at every scan, but scheduled in between.
    tracker = DStateTracker()
    track(tracker, 100.0, blocked(1, runs=10))
    assert track(tracker, 130.0, blocked(1, runs=11)) == [0.0]
    assert track(tracker, 160.0, blocked(1, runs=11)) == [30.0]


def test_a_reused_pid_is_a_new_task():
    tracker = DStateTracker()
    track(tracker, 100.0, blocked(1, started=5.0))
    assert track(tracker, 130.0, blocked(1, started=120.0)) == [0.0]


def test_a_task_missing_from_a_scan_is_forgotten():
    tracker = DStateTracker()
    track(tracker, 100.0, blocked(1))
    track(tracker, 130.0)
    assert track(tracker, 160.0, blocked(1)) == [0.0]


def test_without_schedstat_presence_alone_counts():
    tracker = DStateTracker()
    track(tracker, 100.0, blocked(1, runs=None))
    assert track(tracker, 110.0, blocked(1, runs=None)) == [10.0]


def test_signals_per_mount_over_the_thresholds():
    tasks = [
        replace(blocked(1), blocked_seconds=40.0),
        replace(blocked(2, mounts=("/srv/mail", "/srv/web")), blocked_seconds=25.0),
        replace(blocked(3, mounts=("/srv/web",)), blocked_seconds=5.0),
        replace(blocked(4, mounts=()), blocked_seconds=99.0),
    ]
    signals = d_state_signals(tasks, at=1700000000.0, min_seconds=20.0)
    assert [(s.mount, len(s.stuck_tasks)) for s in signals] == [("/srv/mail", 2), ("/srv/web", 1)]
    mail = signals[0]
    assert mail.kind == Kind.TASKS_D_STATE
    assert mail.attributes == {"tasks": "2", "longest_s": "40.0"}
    assert mail.stuck_tasks[0] == StuckTask(
        pid=1, comm="task1", wchan="percpu_rwsem_wait", blocked_seconds=40.0
    )
    assert d_state_signals(tasks, at=1.0, min_seconds=20.0, min_tasks=2)[0].mount == "/srv/mail"
    assert d_state_signals(tasks, at=1.0, min_seconds=50.0) == []
