"""Multi-line report grouping: one report per hung task, whatever is interleaved."""

import pytest

from agent.kmsg.devices import device_in_text, device_of_task
from agent.kmsg.hung_task import (
    ReportGrouper,
    ReportKind,
    filesystem_of_stack,
    filesystem_of_task,
)
from hangwatch.kernelstack import is_frame

MODERN = """\
INFO: task kworker/u8:2:1234 blocked for more than 122 seconds.
      Tainted: G        W          6.18.0 #1
"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
task:kworker/u8:2 state:D stack:0     pid:1234  tgid:1234  ppid:2   task_flags:0x4208060 flags:0x0
Workqueue: writeback wb_workfn (flush-8:0)
Call Trace:
 <TASK>
 __schedule+0x4cb/0x1a70
 ? sched_clock_cpu+0x10/0x1a0
 schedule+0x2a/0xe0
 xlog_grant_head_wait+0x5c/0x2a0 [xfs 28bfed63550f2a1085614a29851734fab813b29a]
 xfs_trans_reserve+0x1c3/0x240 [xfs]
 iomap_writepages+0x2a/0x60
 </TASK>
"""

OLD = """\
INFO: task jbd2/sdb1-8:412 blocked for more than 120 seconds.
      Not tainted 3.10.0-1160.el7.x86_64 #1
"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
jbd2/sdb1-8     D ffff9d6fbe7b4100     0   412      2 0x00000000
 ffff8800b9e104c0 0000000000000086 ffff8800b805bda8 ffff8800b7d78040
Call Trace:
 [<ffffffffb9d67c49>] schedule+0x29/0x70
 [<ffffffffc03923f9>] jbd2_journal_commit_transaction+0x23c/0x19b0 [jbd2]
 [<ffffffffb96d67b0>] ? wake_up_state+0x20/0x20
 [<ffffffffc0398b3d>] kjournald2+0xcd/0x260 [jbd2]
"""


def feed_all(grouper, text, now=0.0):
    """Feeds lines; returns (reports, lines not consumed by a report)."""
    reports, passed = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        consumed, done = grouper.feed(line.strip(), now, origin=number)
        reports += done
        if not consumed:
            passed.append(line.strip())
    return reports, passed


def test_modern_report_is_one_report():
    grouper = ReportGrouper()
    reports, passed = feed_all(grouper, MODERN)
    assert passed == []
    (report,) = reports  # closed by </TASK>, no flush needed
    assert report.kind is ReportKind.HUNG_TASK
    assert report.origin == 1
    (task,) = report.tasks
    assert (task.comm, task.pid, task.blocked_seconds) == ("kworker/u8:2", 1234, 122.0)
    assert task.stack == (
        "__schedule",
        "schedule",
        "xlog_grant_head_wait",
        "xfs_trans_reserve",
        "iomap_writepages",
    )
    assert task.wchan == "__schedule"
    assert report.filesystem == "xfs"
    assert report.workqueues == ("writeback",)
    assert not grouper.pending


def test_old_report_closes_on_flush():
    grouper = ReportGrouper()
    reports, passed = feed_all(grouper, OLD)
    assert (reports, passed) == ([], [])
    (report,) = grouper.flush()
    (task,) = report.tasks
    assert (task.comm, task.pid) == ("jbd2/sdb1-8", 412)
    assert task.stack == ("schedule", "jbd2_journal_commit_transaction", "kjournald2")
    assert report.filesystem == "ext4"
    assert report.devices == ("sdb1",)


def test_interleaved_lines_pass_through_and_do_not_end_the_report():
    lines = OLD.splitlines()
    noisy = "\n".join(
        [
            *lines[:5],
            "nfs: server filer not responding, still trying",
            *lines[5:],
            "e1000e: eth0 NIC Link is Up",
        ]
    )
    grouper = ReportGrouper()
    reports, passed = feed_all(grouper, noisy)
    assert passed == [
        "nfs: server filer not responding, still trying",
        "e1000e: eth0 NIC Link is Up",
    ]
    assert reports == []
    (report,) = grouper.flush()
    assert len(report.tasks[0].stack) == 3


def test_next_header_closes_the_previous_report():
    burst = "\n".join(
        f"INFO: task t{i}:{100 + i} blocked for more than 120 seconds.\n"
        '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.'
        for i in range(3)
    )
    grouper = ReportGrouper()
    reports, _ = feed_all(grouper, burst)
    reports += grouper.flush()
    assert [r.tasks[0].pid for r in reports] == [100, 101, 102]
    assert [r.origin for r in reports] == [1, 3, 5]


def test_other_report_start_closes_it():
    grouper = ReportGrouper()
    feed_all(grouper, OLD)
    consumed, done = grouper.feed("rcu: INFO: rcu_sched detected stalls on CPUs/tasks:", 0.0)
    assert not consumed
    assert len(done) == 1


def test_line_budget():
    grouper = ReportGrouper(line_budget=5)
    reports, _ = feed_all(grouper, MODERN.replace(" </TASK>\n", ""))
    assert len(reports) == 1
    assert len(reports[0].tasks[0].stack) <= 2


def test_time_budget():
    grouper = ReportGrouper(time_budget=2.0)
    feed_all(grouper, OLD, now=100.0)
    assert grouper.expire(101.0) == []
    (report,) = grouper.expire(102.5)
    assert report.started_at == 100.0
    assert grouper.expire(200.0) == []


def test_second_task_in_the_same_report():
    text = """\
INFO: task udevd:294 blocked for more than 122 seconds.
udevd           D    0   294      1 0x00400008
Call trace:
 mutex_lock_nested+0x40/0x50
dd              D    0  2798   2764 0x00400208
Call trace:
 io_schedule+0x1c/0x40
 ext4_writepages+0x1c/0x40
"""
    grouper = ReportGrouper()
    feed_all(grouper, text)
    (report,) = grouper.flush()
    assert [(t.comm, t.pid, t.stack) for t in report.tasks] == [
        ("udevd", 294, ("mutex_lock_nested",)),
        ("dd", 2798, ("io_schedule", "ext4_writepages")),
    ]
    assert report.filesystem == "ext4"


def test_soft_lockup_report():
    text = """\
watchdog: BUG: soft lockup - CPU#19 stuck for 22s! [jbd2/pmem0-8:1002]
Call Trace:
 _raw_spin_lock+0x57/0x70
 jbd2_journal_invalidatepage+0x166/0x680
"""
    grouper = ReportGrouper()
    feed_all(grouper, text)
    (report,) = grouper.flush()
    assert report.kind is ReportKind.SOFT_LOCKUP
    assert (report.tasks[0].comm, report.tasks[0].pid) == ("jbd2/pmem0-8", 1002)
    assert report.devices == ("pmem0",)
    assert report.filesystem == "ext4"


@pytest.mark.parametrize(
    ("line", "frame"),
    [
        ("__schedule+0x4cb/0x1a70", True),
        ("? check_preempt_wakeup_fair+0x162/0x2a0", True),
        ("[<ffffffff81532510>] ? bit_wait+0x50/0x50", True),
        ("<NMI>  [<ffffffff8150b4c5>] dump_stack+0x41/0x51", True),
        ("xfs_dio_write_end_io+0x117/0x320 [xfs 28bfed63550f2a1085614a29851734fab813b29a]", True),
        ("__schedule from schedule+0x20/0xac", True),
        ("block_dump___mark_inode_dirty.cold+0x5c/0x111", True),
        ("XFS (dm-0): xfs_do_force_shutdown(0x2) called from line 1203", False),
        ("Call Trace:", False),
    ],
)
def test_frames(line, frame):
    assert is_frame(line) is frame


@pytest.mark.parametrize(
    ("stack", "fs"),
    [
        (("schedule", "xfs_ilock", "xfs_file_write_iter"), "xfs"),
        (("schedule", "xlog_wait"), "xfs"),
        (("schedule", "jbd2__journal_start", "__ext4_journal_start_sb"), "ext4"),
        (("schedule", "rpc_wait_bit_killable", "nfs4_run_open_task"), "nfs"),
        (("schedule", "btrfs_commit_transaction"), "btrfs"),
        (("schedule", "blkdev_issue_flush"), None),
    ],
)
def test_filesystem_of_stack(stack, fs):
    assert filesystem_of_stack(stack) == fs


@pytest.mark.parametrize(
    ("task", "fs", "device"),
    [
        ("jbd2/sda1-8", "ext4", "sda1"),
        ("jbd2/dm-2-8", "ext4", "dm-2"),
        ("xfsaild/dm-0", "xfs", "dm-0"),
        ("xfs-cil/nvme0n1p2", "xfs", "nvme0n1p2"),
        ("kworker/u8:2+flush-8:0", None, "8:0"),
        ("dio/sda4", None, "sda4"),
        ("md0_raid1", None, "md0"),
        ("loop3", None, "loop3"),
        ("btrfs-transacti", "btrfs", None),
        ("bash", None, None),
    ],
)
def test_task_names(task, fs, device):
    assert filesystem_of_task(task) == fs
    assert device_of_task(task) == device


@pytest.mark.parametrize(
    ("text", "device"),
    [
        ("blk_update_request: I/O error, dev sdb, sector 0", "sdb"),
        ("XFS (dm-3): log I/O error -5", "dm-3"),
        ("EXT4-fs (loop3): mounted", "loop3"),
        ("Buffer I/O error on dev nvme0n1p2, logical block 1", "nvme0n1p2"),
        ("md/raid1:md0: Disk failure on sda1", "md0"),
        ("Aborting journal on device sda1-8.", "sda1"),
        ("sd 2:0:0:0: [sda] tag#0 FAILED", "sda"),
        ("sdhci-pci 0000:00:1e.6: SDHCI controller found", None),
        ("nothing here", None),
    ],
)
def test_device_in_text(text, device):
    assert device_in_text(text) == device
