"""Lockup fingerprints: the same bug gives the same frames whatever the architecture's
stack format, the build's addresses and offsets, and the host (pure)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controller.upgrades.fingerprints import TOP_FRAMES, blocked_top, fingerprint, top_frames
from hangwatch.kernelstack import function_name
from hangwatch.v1 import types_pb2 as pb

WORDINGS = Path(__file__).parents[1] / "fixtures" / "kmsg-wordings" / "hung-task.txt"
_STAMP = re.compile(r"\[\s*\d+\.\d+\] ?")


def traces() -> dict[str, list[str]]:
    """Call-trace lines of each example of the hung-task wordings, by its `# arch:` and
    first source line (the kernel's own formats, with dmesg stamps removed)."""
    out: dict[str, list[str]] = {}
    arch = source = ""
    in_trace = False
    for line in WORDINGS.read_text().splitlines():
        if line.startswith("# source:") and not source:
            source = line.split()[3]  # the version
        elif line.startswith("# arch:"):
            arch = line.split()[2].rstrip(";")
        elif line.startswith("[") and source:
            text = _STAMP.sub("", line, count=1)
            if text.startswith("Call"):
                in_trace = True
            elif in_trace:
                out.setdefault(f"{arch} {source}", []).append(text)
        elif not line.strip():
            arch = source = ""
            in_trace = False
    return out


def test_every_architecture_reads_to_the_telling_frames():
    found = {key: top_frames(lines) for key, lines in traces().items()}
    assert found["x86-64 v3.10"] == ("jbd2_journal_commit_transaction", "kjournald2")
    assert found["s390x v5.10"] == ("jbd2_journal_commit_transaction", "kjournald2")
    assert found["arm64 v4.14"] == ("wait_on_page_bit", "ext4_writepages", "do_writepages")
    assert found["powerpc v6.1"] == ("xfs_log_force", "xfsaild")
    assert found["x86-64 v5.10"] == (
        "xlog_grant_head_wait",
        "xfs_log_reserve",
        "xfs_trans_reserve",
        "xfsaild",
    )
    # The 6.17 report carries the blocker's trace too; the first task's top comes first.
    assert found["x86-64 v6.17"][:3] == ("__mutex_lock", "ext4_buffered_write_iter", "vfs_write")


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("[<0>] percpu_rwsem_wait+0x15f/0x1d0", "percpu_rwsem_wait"),  # /proc/PID/stack
        (" [<ffffffff8163a909>] schedule+0x29/0x70", "schedule"),  # x86 3.x
        ("xfs_log_force+0x1a8/0x360 [xfs]", "xfs_log_force"),
        ("[c00000000f7e7d70] [c008000005a9e0f8] xfs_log_force+0x1a8/0x360 [xfs]", "xfs_log_force"),
        ("[c000000fe3f4f8d0] [c000000000014a1c] .__switch_to+0x1bc/0x2f0", "__switch_to"),
        (" [<000003ff8018b1d8>] kjournald2+0x10a/0x2e0 [jbd2]", "kjournald2"),
        ("[<ffffff8008f144e8>] schedule+0x38/0x98", "schedule"),  # arm64 4.x
        ("__mutex_lock.constprop.0+0x49c/0x8d0", "__mutex_lock"),
        ("ext4_writepages.cold+0x5c/0x111", "ext4_writepages"),
        ("do_writepages.isra.0.part.0+0x1/0x2", "do_writepages"),
        (
            "xfs_dio_write_end_io+0x117/0x320 [xfs 28bfed63550f2a1085614a29851734fab813b29a]",
            "xfs_dio_write_end_io",
        ),
        ("percpu_rwsem_wait", "percpu_rwsem_wait"),  # a name the agent kept
        # Guessed frames and anything that is not a frame name nothing.
        (" [<ffffffff810b1b20>] ? wake_up_atomic_t+0x30/0x30", None),
        ("? __pfx_kthread+0x10/0x10", None),
        (" ([<00000000b2b1d58a>] __schedule+0x2ca/0x7a0)", None),
        ("[c00000000f7e7a30] [c00000000f7e7a70] 0xc00000000f7e7a70 (unreliable)", None),
        ("[c0000000] [c0000001] show_stack+0x1/0x2 (unreliable)", None),
        ("ffffffff81532510", None),
        ("<TASK>", None),
        ("Call Trace:", None),
        ("", None),
    ],
)
def test_frame_names(line, name):
    assert function_name(line) == name


def test_top_frames_skip_scheduling_and_entry_and_stop_at_the_top():
    stack = [
        "__switch_to+0x1/0x2",
        "__schedule+0x1/0x2",
        "schedule+0x1/0x2",
        "io_schedule+0x1/0x2",
        "a+0x1/0x2",
        "b+0x1/0x2",
        "c+0x1/0x2",
        "d+0x1/0x2",
        "e+0x1/0x2",
        "do_syscall_64+0x1/0x2",
    ]
    assert top_frames(stack) == ("a", "b", "c", "d")
    assert len(top_frames(stack)) == TOP_FRAMES
    assert top_frames(["schedule+0x1/0x2", "kthread+0x1/0x2", "ret_from_fork+0x1/0x2"]) == ()


def writer(pid: int, trace: list[str] = (), stack: list[str] = (), wchan: str = "") -> pb.StuckTask:
    return pb.StuckTask(pid=pid, comm="sh", trace=trace, stack=stack, wchan=wchan)


OPEN = ["percpu_rwsem_wait+0x15f/0x1d0", "mnt_want_write+0x96/0xc0", "path_openat+0x4cf/0x12d0"]
MKDIR = ["percpu_rwsem_wait+0x15f/0x1d0", "mnt_want_write+0x96/0xc0", "filename_create+0x5a/0x1b0"]


def confirmed(*tasks: pb.StuckTask, kernel="6.1.0-13-amd64", fs="ext4", rule="probe-stuck-no-io"):
    event = pb.Event(id="e", kind="LOCKUP_CONFIRMED")
    lockup = event.evidence.lockup
    lockup.kernel_release, lockup.mount.fs_type, lockup.rule = kernel, fs, rule
    lockup.tasks.extend(tasks)
    return event


def test_the_top_most_tasks_share_wins_and_ties_go_to_sort_order():
    three = confirmed(writer(1, OPEN), writer(2, MKDIR), writer(3, OPEN))
    assert blocked_top(three.evidence) == ("percpu_rwsem_wait", "mnt_want_write", "path_openat")
    tie = confirmed(writer(2, MKDIR), writer(1, OPEN))
    assert blocked_top(tie.evidence) == ("percpu_rwsem_wait", "mnt_want_write", "filename_create")


def test_stacks_fall_back_to_names_then_wchan_then_the_signals_tasks():
    names = confirmed(writer(1, stack=["schedule", "percpu_rwsem_wait", "mnt_want_write"]))
    assert blocked_top(names.evidence) == ("percpu_rwsem_wait", "mnt_want_write")
    wchan_only = confirmed(writer(1, wchan="percpu_rwsem_wait"))
    assert blocked_top(wchan_only.evidence) == ("percpu_rwsem_wait",)
    # Without CAP_SYS_ADMIN /proc/PID/stack is closed; a hung-task report of the pid is not.
    wchan_only.evidence.stuck_tasks.append(
        writer(1, stack=["__schedule", "percpu_rwsem_wait", "__percpu_down_read"])
    )
    assert blocked_top(wchan_only.evidence) == ("percpu_rwsem_wait", "__percpu_down_read")
    timed_out = confirmed()
    timed_out.evidence.stuck_tasks.append(writer(7, stack=["schedule", "xlog_grant_head_wait"]))
    assert blocked_top(timed_out.evidence) == ("xlog_grant_head_wait",)


def test_same_bug_same_fingerprint_across_hosts_pids_and_builds():
    a = fingerprint(confirmed(writer(100, OPEN), writer(101, MKDIR)))
    rebuilt = [re.sub(r"\+0x\w+/0x\w+", "+0x1/0x2", f) for f in OPEN + MKDIR]
    b = fingerprint(
        confirmed(writer(7, rebuilt[3:]), writer(9, ["[<0>] " + f for f in rebuilt[:3]]))
    )
    assert a == b
    assert a.signature == (
        "ext4 probe-stuck-no-io: percpu_rwsem_wait < mnt_want_write < filename_create"
    )
    assert re.fullmatch(r"[0-9a-f]{16}", a.id)
    for other in (
        confirmed(writer(1, OPEN), writer(2, MKDIR), kernel="6.1.0-15-amd64"),
        confirmed(writer(1, OPEN), writer(2, MKDIR), fs="xfs"),
        confirmed(writer(1, OPEN), writer(2, MKDIR), rule="hung-task-no-io"),
        confirmed(writer(1, OPEN), writer(2, OPEN)),
    ):
        assert fingerprint(other).id != a.id


def test_registration_stands_in_for_missing_evidence():
    bare = pb.Event(id="e", kind="LOCKUP_CONFIRMED")
    fp = fingerprint(bare, kernel="6.1.0-13-amd64", fs_type="xfs")
    assert (fp.kernel, fp.fs_type, fp.frames) == ("6.1.0-13-amd64", "xfs", ())
    assert fp.signature == "xfs unknown rule: no stack"
    own = fingerprint(confirmed(writer(1, OPEN)), kernel="ignored", fs_type="ignored")
    assert (own.kernel, own.fs_type) == ("6.1.0-13-amd64", "ext4")
