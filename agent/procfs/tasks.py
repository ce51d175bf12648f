"""One task's own files: /proc/PID/stat, wchan and stack.

Reading them never waits on the task, even one stuck in D state: the kernel formats
them from what it holds already. A task may exit between two reads; its files then
simply vanish, which every reader here answers with "unknown" rather than an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from agent.procfs._files import read_attr

_PF_KTHREAD = 0x00200000


@dataclass(frozen=True)
class TaskStat:
    """What the agent needs of /proc/PID/stat."""

    comm: str
    # One letter: "D" is uninterruptible sleep.
    state: str
    flags: int

    @property
    def kernel_thread(self) -> bool:
        return bool(self.flags & _PF_KTHREAD)


def parse_stat(text: str) -> TaskStat:
    """Parses /proc/PID/stat; raises `ValueError` on text that is not one."""
    # comm may hold spaces and parentheses (") " too): it runs to the last ")".
    try:
        close = text.rindex(")")
        fields = text[close + 2 :].split()
        return TaskStat(text[text.index("(") + 1 : close], fields[0], int(fields[6]))
    except (ValueError, IndexError):
        raise ValueError(f"not a /proc/PID/stat line: {text[:200]!r}") from None


def read_stat(proc_root: str, pid: int) -> TaskStat | None:
    """The task's stat, `None` when it has gone."""
    text = read_attr(os.path.join(proc_root, str(pid), "stat"))
    return parse_stat(text) if text else None


def read_wchan(proc_root: str, pid: int) -> str:
    """The kernel function the task sleeps in; empty when it runs, has gone or is hidden."""
    wchan = read_attr(os.path.join(proc_root, str(pid), "wchan")) or ""
    return "" if wchan == "0" else wchan


def read_stack_trace(proc_root: str, pid: int) -> tuple[str, ...]:
    """/proc/PID/stack lines with offsets, innermost first (root only; empty when unreadable).

    The kernel prints "[<0>] percpu_rwsem_wait+0x123/0x150": the address (hidden as 0)
    is dropped, the function and offset are kept.
    """
    try:
        text = read_attr(os.path.join(proc_root, str(pid), "stack")) or ""
    except OSError:
        return ()
    frames = (line.partition("] ")[2].strip() for line in text.splitlines())
    return tuple(frame for frame in frames if frame)


def read_stack(proc_root: str, pid: int) -> tuple[str, ...]:
    """Function names from /proc/PID/stack (root only; empty when unreadable)."""
    functions = (frame.partition("+")[0] for frame in read_stack_trace(proc_root, pid))
    return tuple(function for function in functions if function)
