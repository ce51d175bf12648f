"""Lockup evidence: gathered from fixture /proc and /sys trees, held in memory, bounded,
and published in event order within a deadline."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path

import psutil
import pytest

from agent.evidence import bounds
from agent.evidence.collector import EvidenceCollector, InOrder
from agent.evidence.facts import LockupFacts, facts_of
from agent.evidence.gather import gather
from agent.evidence.reports import hung_task_reports
from agent.health import State, Transition
from agent.kmsg.recent import LogLine, RecentKernelLog
from agent.kmsg.record import Format, KmsgRecord
from agent.procfs.dstate import TaskStatus
from agent.signals import Kind, Severity, Signal, StuckTask
from hangwatch.v1 import types_pb2 as pb

FIXTURES = Path(__file__).parents[1] / "fixtures"
MAIL = "/srv/mail"
STACK = """\
[<0>] percpu_rwsem_wait+0x15f/0x1d0
[<0>] mnt_want_write+0x96/0xc0
[<0>] path_openat+0x4cf/0x12d0
"""


@pytest.fixture
def roots(tmp_path: Path) -> tuple[str, str]:
    """The storage1 snapshot, plus what evidence reads beyond the D-state scan."""
    proc, sys = tmp_path / "proc", tmp_path / "sys"
    shutil.copytree(FIXTURES / "proc" / "storage1", proc, symlinks=True)
    shutil.copytree(FIXTURES / "sys" / "storage1", sys, symlinks=True)
    (proc / "version").write_text("Linux version 6.1.0-18-amd64 (gcc-12) #1 SMP Debian\n")
    (proc / "1201" / "stack").write_text(STACK)
    (sys / "class/block/dm-0/inflight").write_text("       0        3\n")
    return str(proc), str(sys)


def facts(**overrides: object) -> LockupFacts:
    base: dict[str, object] = {
        "mount": MAIL,
        "rule": "probe-stuck-no-io",
        "kernel_release": "6.1.0-18-amd64",
        "architecture": "x86_64",
        "trouble_since": 1_000.0,
    }
    return LockupFacts(**{**base, **overrides})  # type: ignore[arg-type]


def tasks() -> list[TaskStatus]:
    # 1201 (imap, cwd on /srv/mail) and 1302 are blocked; 1600 sleeps.
    return [
        TaskStatus(1201, psutil.STATUS_DISK_SLEEP, 2201.0),
        TaskStatus(1302, psutil.STATUS_DISK_SLEEP, 2302.0),
        TaskStatus(1600, psutil.STATUS_SLEEPING, 1.0),
    ]


def test_gather_reads_kernel_mount_stacks_and_devices(roots):
    proc, sys = roots
    lockup = gather(
        # 1302 is blocked elsewhere but named by the mount's signals (as a stuck probe
        # is); 1600 was named too but runs again.
        facts(
            kernel_log=(LogLine(1_000_000, "hello"),),
            blocked_for={1201: 42.0, 1302: 5.0, 1600: 9.0},
        ),
        proc_root=proc,
        sys_root=sys,
        tasks=tasks,
    )
    assert lockup.kernel_build.startswith("Linux version 6.1.0-18-amd64")
    assert (lockup.kernel_release, lockup.rule) == ("6.1.0-18-amd64", "probe-stuck-no-io")
    assert lockup.mount.fs_type == "xfs" and "noatime" in lockup.mount.options
    assert lockup.mount.backing_devices[0] == "dm-0"
    writer = next(t for t in lockup.tasks if t.pid == 1201)
    assert writer.comm == "imap" and writer.wchan == "percpu_rwsem_wait"
    assert list(writer.trace) == [
        "percpu_rwsem_wait+0x15f/0x1d0",
        "mnt_want_write+0x96/0xc0",
        "path_openat+0x4cf/0x12d0",
    ]
    assert writer.blocked_for.seconds == 42
    assert [t.pid for t in lockup.tasks] == [1201, 1302]  # longest blocked first
    assert lockup.tasks[1].comm == "rsync" and not lockup.tasks[1].trace
    dm0 = lockup.devices[0]
    assert dm0.device == "dm-0" and dm0.diskstats.split()[2] == "dm-0"
    assert (dm0.in_flight_reads, dm0.in_flight_writes) == (0, 3)
    assert all(d.in_flight_reads == -1 for d in lockup.devices[1:])  # no inflight file
    assert list(lockup.kernel_log) == ["[    1.000000] hello"]
    assert lockup.HasField("gathered_at") and lockup.trouble_since.seconds == 1000


def test_gather_notes_what_it_cannot_read(roots, tmp_path):
    proc, sys = roots
    (Path(proc) / "version").unlink()
    (Path(proc) / "1201" / "stack").unlink()
    lockup = gather(facts(), proc_root=proc, sys_root=sys, tasks=tasks)
    assert any("/proc/version" in n for n in lockup.notes)
    assert any("wchan only" in n for n in lockup.notes)
    assert [t.wchan for t in lockup.tasks if t.pid == 1201] == ["percpu_rwsem_wait"]


def big_evidence() -> pb.LockupEvidence:
    lockup = pb.LockupEvidence(kernel_build="x" * 5000)
    for pid in range(40):
        lockup.tasks.add(pid=pid, comm="c" * 100, trace=[f"fn_{i}+0x1/0x2" * 20 for i in range(60)])
    lockup.kernel_log.extend(f"[{i:5d}.000000] " + "l" * 900 for i in range(1000))
    for r in range(10):
        lockup.hung_task_reports.add(lines=[f"report {r} line {i} " + "r" * 400 for i in range(99)])
    lockup.mount.options.extend(f"opt{i}=" + "o" * 300 for i in range(200))
    lockup.mount.fs_features.update({f"feature{i}": "f" * 300 for i in range(200)})
    for d in range(20):
        lockup.devices.add(device=f"sd{d}", diskstats="8 0 sda " + "1 " * 400)
    lockup.notes.extend(f"note {i} " + "n" * 400 for i in range(30))
    return lockup


def test_bounds_hold_every_part_and_the_whole():
    lockup = big_evidence()
    bounds.bound(lockup)
    assert lockup.ByteSize() <= bounds.MAX_TOTAL_BYTES
    assert len(lockup.kernel_build) == bounds.MAX_TEXT_CHARS
    assert len(lockup.tasks) <= bounds.MAX_TASKS
    assert sum(t.ByteSize() for t in lockup.tasks) <= bounds.TASKS_BYTES
    assert all(len(t.trace) <= bounds.MAX_TRACE_FRAMES for t in lockup.tasks)
    assert [t.pid for t in lockup.tasks] == list(range(len(lockup.tasks)))  # the first kept
    assert len(lockup.kernel_log) <= bounds.MAX_LOG_LINES
    assert sum(len(line) for line in lockup.kernel_log) <= bounds.LOG_BYTES
    assert lockup.kernel_log[-1].startswith("[  999.")  # the newest kept
    assert len(lockup.hung_task_reports) <= bounds.MAX_REPORTS
    assert lockup.hung_task_reports[-1].lines[0].startswith("report 9 ")
    assert all(len(r.lines) <= bounds.MAX_REPORT_LINES for r in lockup.hung_task_reports)
    assert all(sum(map(len, r.lines)) <= bounds.REPORT_BYTES for r in lockup.hung_task_reports)
    assert len(lockup.mount.options) == len(lockup.mount.fs_features) == bounds.MAX_MOUNT_ENTRIES
    assert len(lockup.devices) == bounds.MAX_DEVICES
    assert len(lockup.notes) == bounds.MAX_NOTES
    assert all(len(n) <= bounds.MAX_NOTE_CHARS for n in lockup.notes)
    assert lockup.notes[-1].endswith("more notes cut")


def test_bounds_say_what_they_cut():
    lockup = pb.LockupEvidence()
    lockup.kernel_log.extend(f"line {i}" for i in range(250))
    lockup.tasks.extend(pb.StuckTask(pid=p) for p in range(20))
    bounds.bound(lockup)
    assert list(lockup.notes) == [
        "tasks: 4 of 20 cut to fit the bounds",
        "kernel log lines (the oldest): 50 of 250 cut to fit the bounds",
    ]
    assert lockup.kernel_log[0] == "line 50"


def test_small_evidence_is_left_as_it_is():
    lockup = pb.LockupEvidence(kernel_log=["a", "b"], rule="probe-stuck-no-io")
    lockup.tasks.add(pid=1, comm="sh", trace=["percpu_rwsem_wait+0x1/0x2"])
    before = lockup.SerializeToString()
    bounds.bound(lockup)
    assert lockup.SerializeToString() == before


def record(usec: int, text: str) -> KmsgRecord:
    return KmsgRecord(text=text, format=Format.KMSG, usec=usec)


def test_recent_kernel_log_keeps_the_newest_records():
    recent = RecentKernelLog(records=3)
    for i in range(5):
        recent.add(record(i * 1_000_000 + 5, f"line {i}" + "x" * 1000))
    window = recent.window(since_usec=3_000_000)
    assert [line.dmesg()[:22] for line in window] == [
        "[    3.000005] line 3x",
        "[    4.000005] line 4x",
    ]
    assert all(len(line.text) == 512 for line in window)
    assert [line.text[:6] for line in recent.window(0)] == ["line 2", "line 3", "line 4"]


REPORT = """\
INFO: task {comm}:{pid} blocked for more than 2 seconds.
      Not tainted 6.18.0 #1
"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
task:{comm}              state:D stack:0     pid:{pid}  tgid:{pid}  ppid:1      flags:0x00004002
Call Trace:
 <TASK>
 __schedule+0x3cc/0xf50
 percpu_rwsem_wait+0x15f/0x1d0
 </TASK>"""


def test_hung_task_reports_about_the_mounts_tasks_are_grouped_from_the_window():
    text = [
        "EXT4-fs (loop3): mounted filesystem",
        *REPORT.format(comm="sh", pid=42).splitlines(),
        *REPORT.format(comm="cron", pid=7).splitlines(),  # another task: not this mount's
        *REPORT.format(comm="sh", pid=42).replace("2 seconds", "4 seconds").splitlines(),
    ]
    lines = [LogLine(5_000_000 + i * 1000, line.strip()) for i, line in enumerate(text)]
    reports = hung_task_reports(lines, {42})
    assert [r.lines[0] for r in reports] == [
        "INFO: task sh:42 blocked for more than 2 seconds.",
        "INFO: task sh:42 blocked for more than 4 seconds.",
    ]
    assert "percpu_rwsem_wait+0x15f/0x1d0" in reports[0].lines
    assert all(r.HasField("at") for r in reports)
    assert hung_task_reports(lines, {99}) == []


def transition(evidence: tuple[Signal, ...], at: float = 2_000.0) -> Transition:
    return Transition(
        mount=MAIL,
        before=State.SUSPECT,
        after=State.LOCKED,
        kind=Kind.LOCKUP_CONFIRMED,
        severity=Severity.CRITICAL,
        summary="locked",
        at=at,
        evidence=evidence,
        rule="probe-stuck-no-io",
    )


def test_facts_date_the_trouble_and_the_blocked_tasks():
    def signal(at: float, *stuck: StuckTask) -> Signal:
        return Signal(
            "dstate", Kind.TASKS_D_STATE, Severity.WARNING, "", at, MAIL, stuck_tasks=stuck
        )

    host_wide = Signal(
        "kmsg",
        Kind.SOFT_LOCKUP,
        Severity.WARNING,
        "",
        1_999.0,
        stuck_tasks=(StuckTask(5, "cc1"),),
    )
    evidence = (
        signal(1_000.0),  # older than the lookback: not the start of this lockup
        host_wide,  # its task is not this mount's
        signal(1_990.0, StuckTask(7, "sh", blocked_seconds=3.0)),
        signal(1_995.0, StuckTask(7, "sh", blocked_seconds=8.0), StuckTask(9, "imap")),
    )
    inventory = pb.Inventory(kernel_release="6.1.0-18-amd64", architecture="x86_64")
    found = facts_of(transition(evidence), None, inventory)
    assert found.trouble_since == 1_990.0
    assert dict(found.blocked_for) == {7: 8.0, 9: 0.0}
    assert (found.kernel_release, found.rule) == ("6.1.0-18-amd64", "probe-stuck-no-io")
    assert found.kernel_log == () and "not read" in found.notes[0]


def event(n: int) -> pb.Event:
    return pb.Event(id=str(n), host_seq=n)


def test_in_order_holds_later_events_behind_one_gathering():
    sent: list[str] = []
    order = InOrder(lambda e: sent.append(e.id))
    order.put(event(1))
    first = order.hold(event(2))
    order.put(event(3))
    second = order.hold(event(4))
    order.put(event(5))
    assert sent == ["1"] and order.held == 4
    order.release(second)
    assert sent == ["1"]
    order.release(first)
    assert sent == ["1", "2", "3", "4", "5"] and order.held == 0


def run_collector(gather_fn, deadline: float = 0.2, close_early: bool = False) -> list[pb.Event]:
    sent: list[pb.Event] = []

    async def main() -> None:
        order = InOrder(sent.append)
        collector = EvidenceCollector(order, deadline=deadline, gather_fn=gather_fn)
        collector.attach(event(1), facts(kernel_log=(LogLine(1_000_000, "in memory"),)))
        order.put(event(2))
        if close_early:
            await asyncio.sleep(0.01)
            await collector.close()
        for _ in range(200):
            if len(sent) == 2:
                return
            await asyncio.sleep(0.01)

    asyncio.run(main())
    return sent


def test_collector_attaches_what_the_thread_gathered():
    gathered = pb.LockupEvidence(kernel_build="Linux version test")
    sent = run_collector(lambda _: gathered)
    assert [e.id for e in sent] == ["1", "2"]
    assert sent[0].evidence.lockup.kernel_build == "Linux version test"


def test_collector_past_its_deadline_publishes_the_kernel_log_and_says_so():
    release = threading.Event()

    def hangs(_: LockupFacts) -> pb.LockupEvidence:
        release.wait(10)
        return pb.LockupEvidence()

    started = time.monotonic()
    sent = run_collector(hangs, deadline=0.1)
    release.set()
    assert time.monotonic() - started < 2
    assert [e.id for e in sent] == ["1", "2"]
    lockup = sent[0].evidence.lockup
    assert list(lockup.kernel_log) == ["[    1.000000] in memory"]
    assert "took over 0.1s: only the kernel log is here" in lockup.notes[-1]


def test_collector_failure_and_shutdown_still_publish_in_order():
    def fails(_: LockupFacts) -> pb.LockupEvidence:
        raise OSError("boom")

    sent = run_collector(fails)
    assert [e.id for e in sent] == ["1", "2"]
    assert "failed: boom" in sent[0].evidence.lockup.notes[-1]

    release = threading.Event()
    sent = run_collector(lambda _: release.wait(10) or pb.LockupEvidence(), 5.0, close_early=True)
    release.set()
    assert [e.id for e in sent] == ["1", "2"]
    assert "the agent stopped while gathering" in sent[0].evidence.lockup.notes[-1]
