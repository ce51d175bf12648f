"""Fingerprints of confirmed lockups: when two lockups are the same bug (pure).

The recipe (also in docs/operations.md, "The suspect kernel"):

1. kernel: the release the evidence names, else the one the host registered with;
2. filesystem: the type of the locked mount, from the evidence, else the registration;
3. rule: the condition that confirmed the lockup (`probe-stuck-no-io`,
   `hung-task-no-io`, or the kernel-log rule of a fatal error);
4. frames: each blocked task's stack, once per pid (its /proc trace, else the
   function names of its hung-task report, else its wchan; the tasks the agent read
   at confirmation, else those of the signals behind it), read frame by frame
   (`hangwatch.kernelstack`: offsets, addresses, module names, compiler clone
   suffixes and guessed frames dropped), without the scheduler and syscall-entry
   frames every blocked task has; its TOP_FRAMES innermost frames are its top. The
   top most tasks share is the lockup's (a tie goes to the first in sort order);
5. id: the first 16 hex digits of SHA-256 over kernel, filesystem, rule and the frames,
   one per line.

Two lockups with the same id are the same bug on the same kernel, whatever the
host, the pids, the addresses and the offsets (another build of that kernel).
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from hangwatch.kernelstack import function_name
from hangwatch.v1 import types_pb2 as pb

TOP_FRAMES = 4
# Frames of going to sleep and of entering the kernel: in every blocked stack, so they
# tell nothing about why this one is blocked (x86-64, arm64, powerpc and s390 names).
BOILERPLATE = frozenset(
    {
        "__switch_to",
        "__switch_to_asm",
        "_switch",
        "__schedule",
        "schedule",
        "schedule_timeout",
        "schedule_preempt_disabled",
        "schedule_hrtimeout_range",
        "schedule_hrtimeout_range_clock",
        "io_schedule",
        "io_schedule_timeout",
        "context_switch",
        "finish_task_switch",
        "preempt_schedule_common",
        "__cond_resched",
        "_cond_resched",
        "kthread",
        "ret_from_fork",
        "ret_from_fork_asm",
        "ret_from_kernel_thread",
        "kernel_thread_starter",
        "__ret_from_fork",
        "do_syscall_64",
        "entry_SYSCALL_64_after_hwframe",
        "entry_SYSCALL_64",
        "system_call",
        "system_call_fastpath",
        "system_call_exception",
        "system_call_vectored_common",
        "__do_syscall",
        "__s390x_sys_call",
        "invoke_syscall",
        "el0_svc_common",
        "do_el0_svc",
        "el0_svc",
        "el0t_64_sync_handler",
        "el0t_64_sync",
        "el0_sync",
        "el0_sync_handler",
    }
)


@dataclass(frozen=True)
class Fingerprint:
    id: str
    kernel: str
    fs_type: str
    rule: str
    frames: tuple[str, ...]

    @property
    def signature(self) -> str:
        """One line for people: filesystem, rule and frames (the kernel is said apart)."""
        frames = " < ".join(self.frames) or "no stack"
        return f"{self.fs_type or 'unknown fs'} {self.rule or 'unknown rule'}: {frames}"


def top_frames(stack: Iterable[str]) -> tuple[str, ...]:
    """The innermost TOP_FRAMES telling functions of a stack, in any architecture's format."""
    out: list[str] = []
    for line in stack:
        name = function_name(line)
        if name is None or name in BOILERPLATE:
            continue
        out.append(name)
        if len(out) == TOP_FRAMES:
            break
    return tuple(out)


def blocked_top(evidence: pb.Evidence) -> tuple[str, ...]:
    """The top frames most blocked tasks of the lockup share (see the module's recipe)."""
    # A hung-task report's stack of a pid, for agents that may not read /proc/PID/stack.
    reported = {t.pid: t.stack for t in evidence.stuck_tasks if t.stack}
    tasks = evidence.lockup.tasks or evidence.stuck_tasks
    tops: dict[int, tuple[str, ...]] = {}
    for task in tasks:
        top = (
            top_frames(task.trace)
            or top_frames(task.stack)
            or top_frames(reported.get(task.pid, ()))
            or top_frames([task.wchan])
        )
        if top and task.pid not in tops:
            tops[task.pid] = top
    if not tops:
        return ()
    counts = collections.Counter(tops.values())
    return min(counts, key=lambda top: (-counts[top], top))


def fingerprint(event: pb.Event, kernel: str = "", fs_type: str = "") -> Fingerprint:
    """The fingerprint of a LOCKUP_CONFIRMED event; `kernel` and `fs_type` stand in for
    what its evidence lacks (an agent older than the evidence, a timed-out gathering)."""
    lockup = event.evidence.lockup
    kernel = lockup.kernel_release or kernel
    fs_type = lockup.mount.fs_type or fs_type
    frames = blocked_top(event.evidence)
    text = "\n".join((kernel, fs_type, lockup.rule, *frames))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Fingerprint(digest, kernel, fs_type, lockup.rule, frames)
