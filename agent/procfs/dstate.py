"""Tasks in uninterruptible sleep (D state), and the monitored mounts they hold.

Only what cannot touch a monitored filesystem or wait on a stuck task is read:
/proc/PID/stat, wchan and schedstat, and the *links* under /proc/PID/fd and
/proc/PID/cwd (reading a link formats a path the kernel already holds). Never
/proc/PID/cmdline, environ or maps: they take the task's mmap lock, which a
task stuck in D state may hold. That is also why `psutil_tasks` avoids psutil's
`name()`, which reads cmdline for long names.

Cost: psutil reads /proc/PID/stat for every process; each D-state task then
costs a few small reads plus one readlink per fd, capped by `max_fds`. Only
thread group leaders are listed: a blocked thread whose leader sleeps is
missed here and left to the kernel's hung-task reports.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import psutil

from agent.procfs._files import read_attr
from agent.procfs.mountinfo import DeviceMap
from agent.procfs.tasks import read_stat, read_wchan
from agent.signals import Kind, Severity, Signal, StuckTask

# A kworker's pool id ("u8:2", "3:1H", "R" for rescuers), then its work description.
_KWORKER = re.compile(r"(?:R|u?\d+:\d+H?)[+-](.+)")
_DEVNO_SUFFIX = re.compile(r"(?:^|-)(\d+:\d+)$")


@dataclass(frozen=True)
class TaskStatus:
    """One row of the process list."""

    pid: int
    # psutil's status name; "disk-sleep" is D.
    status: str
    # Creation time: tells a reused PID from the task seen before.
    started: float


def psutil_tasks() -> Iterator[TaskStatus]:
    """The process list, asking psutil only for what /proc/PID/stat holds."""
    for proc in psutil.process_iter(["status", "create_time"]):
        status: str | None = proc.info["status"]
        started: float | None = proc.info["create_time"]
        if status is not None:
            yield TaskStatus(proc.pid, status, started or 0.0)


@dataclass(frozen=True)
class BlockedTask:
    """A task seen in D state, with what ties it to monitored mounts."""

    pid: int
    started: float
    comm: str
    wchan: str
    kernel_thread: bool
    # Monitored mounts it holds files on (or, for a kernel thread, works for).
    mounts: tuple[str, ...]
    # Per mount, the link or name that showed it: "fd/5 -> /srv/mail/x", "comm jbd2/loop3-8".
    evidence: tuple[str, ...]
    # Times the task has been scheduled (schedstat); a change means it woke up.
    runs: int | None
    # More fds than the scan reads: an unattributed task may still hold files there.
    fds_capped: bool = False
    # Filled by `DStateTracker`: time since first seen blocked, a lower bound.
    blocked_seconds: float = 0.0

    def stuck_task(self) -> StuckTask:
        return StuckTask(
            pid=self.pid, comm=self.comm, wchan=self.wchan, blocked_seconds=self.blocked_seconds
        )


@dataclass(frozen=True)
class DStateScan:
    """One pass over the process list, with what the caps left out."""

    tasks: tuple[BlockedTask, ...]
    # Processes whose status was looked at.
    listed: int
    # D-state tasks left uninspected because `max_blocked` was reached.
    skipped: int
    # The process list was cut at `max_processes`.
    truncated: bool


def device_hints(comm: str) -> list[str]:
    """Device names a kernel thread's name may carry, most literal first.

    Examples: "jbd2/loop3-8" (device-inode), "xfsaild/dm-0", "md0_raid1",
    "kdmflush/253:0", "kworker/u8:2+flush-7:3" (writeback of a bdi),
    "kworker/u8:2+loop3". A kworker's own pool id ("7:1") only looks like
    MAJ:MIN, so for kworkers only the work description counts. Names are cut at
    15 characters, which can leave a trailing "-".
    """
    kind, _, rest = comm.partition("/")
    if kind == "kworker":
        work = _KWORKER.fullmatch(rest)
        parts = [work.group(1)] if work else []
    else:
        parts = [kind, *rest.split("/")]
    hints: list[str] = []
    for part in filter(None, parts):
        hints.append(part)
        devno = _DEVNO_SUFFIX.search(part)
        if devno:
            hints.append(devno.group(1))
        hints.extend(part.rsplit(sep, 1)[0] for sep in "-_" if sep in part)
    return list(dict.fromkeys(hints))


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def _open_files(base: str, max_fds: int) -> tuple[list[tuple[str, str]], bool]:
    """(link name, target) for the cwd and up to `max_fds` fds; True if fds were cut."""
    links = []
    cwd = _readlink(os.path.join(base, "cwd"))
    if cwd is not None:
        links.append(("cwd", cwd))
    try:
        with os.scandir(os.path.join(base, "fd")) as entries:
            for count, entry in enumerate(entries):
                if count == max_fds:
                    return links, True
                target = _readlink(entry.path)
                if target is not None:
                    links.append((f"fd/{entry.name}", target))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return links, False


def _attribute_files(base: str, devices: DeviceMap, max_fds: int) -> tuple[dict[str, str], bool]:
    """Monitored mounts a process's cwd and open files lie on, with the link as evidence."""
    found: dict[str, str] = {}
    links, capped = _open_files(base, max_fds)
    for link, target in links:
        mount_of = devices.mount(target)
        if mount_of is not None and mount_of.mount_point in devices.monitored:
            found.setdefault(mount_of.mount_point, f"{link} -> {target}")
    return found, capped


def mounts_of_pid(
    pid: int, devices: DeviceMap, proc_root: str = "/proc", max_fds: int = 256
) -> tuple[str, ...]:
    """Monitored mounts a process works on (for tasks named in kernel reports)."""
    found, _ = _attribute_files(os.path.join(proc_root, str(pid)), devices, max_fds)
    return tuple(found)


def inspect_task(
    task: TaskStatus, devices: DeviceMap, proc_root: str = "/proc", max_fds: int = 256
) -> BlockedTask | None:
    """Details of one D-state task; `None` if it has gone or is an unattributable kthread."""
    stat = read_stat(proc_root, task.pid)
    if stat is None:
        return None
    base = os.path.join(proc_root, str(task.pid))
    found: dict[str, str] = {}
    capped = False
    if stat.kernel_thread:
        # A kernel thread's cwd is "/" and it has no fds: only its name can tell.
        for hint in device_hints(stat.comm):
            mount = devices.mount_for_device(hint)
            if mount is not None:
                found.setdefault(mount, f"comm {stat.comm}")
        if not found:
            return None
    else:
        found, capped = _attribute_files(base, devices, max_fds)
    schedstat = read_attr(os.path.join(base, "schedstat"))
    return BlockedTask(
        pid=task.pid,
        started=task.started,
        comm=stat.comm,
        wchan=read_wchan(proc_root, task.pid),
        kernel_thread=stat.kernel_thread,
        mounts=tuple(found),
        evidence=tuple(found.values()),
        runs=int(schedstat.split()[2]) if schedstat else None,
        fds_capped=capped,
    )


def scan_d_state(
    tasks: Iterable[TaskStatus],
    devices: DeviceMap,
    *,
    proc_root: str = "/proc",
    max_processes: int = 50_000,
    max_blocked: int = 64,
    max_fds: int = 256,
) -> DStateScan:
    """Finds D-state tasks in `tasks` (usually `psutil_tasks()`), within the caps.

    User tasks are kept even when no monitored mount is found: they are still
    evidence of trouble somewhere. Kernel threads are kept only when attributed.
    """
    blocked: list[BlockedTask] = []
    listed = skipped = 0
    for task in tasks:
        if listed == max_processes:
            return DStateScan(tuple(blocked), listed, skipped, truncated=True)
        listed += 1
        if task.status != psutil.STATUS_DISK_SLEEP:
            continue
        if len(blocked) == max_blocked:
            skipped += 1
            continue
        found = inspect_task(task, devices, proc_root, max_fds)
        if found is not None:
            blocked.append(found)
    return DStateScan(tuple(blocked), listed, skipped, truncated=False)


class DStateTracker:
    """Dates blocked tasks from the first scan that saw them blocked.

    The kernel keeps no "blocked since" for a task. A task that ran between two
    scans (its schedstat run count moved) starts afresh, so a busy task that is
    in D state briefly at every scan is not taken for a stuck one. A task left
    out of a scan (gone, woken, or beyond a cap) is forgotten.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[int, float], tuple[float, int | None]] = {}

    def update(self, scan: DStateScan, now: float) -> tuple[BlockedTask, ...]:
        """The scan's tasks with `blocked_seconds` set; `now` is monotonic."""
        seen = {}
        dated = []
        for task in scan.tasks:
            key = (task.pid, task.started)
            since, runs = self._seen.get(key, (now, task.runs))
            if runs != task.runs:
                since = now
            seen[key] = (since, task.runs)
            dated.append(replace(task, blocked_seconds=now - since))
        self._seen = seen
        return tuple(dated)


def d_state_signals(
    tasks: Iterable[BlockedTask], *, at: float, min_seconds: float, min_tasks: int = 1
) -> list[Signal]:
    """One TASKS_D_STATE per monitored mount with enough tasks blocked long enough."""
    by_mount: dict[str, list[BlockedTask]] = {}
    for task in tasks:
        if task.blocked_seconds >= min_seconds:
            for mount in task.mounts:
                by_mount.setdefault(mount, []).append(task)
    signals = []
    for mount, held in by_mount.items():
        if len(held) < min_tasks:
            continue
        longest = max(t.blocked_seconds for t in held)
        signals.append(
            Signal(
                source="dstate",
                kind=Kind.TASKS_D_STATE,
                severity=Severity.WARNING,
                summary=f"{len(held)} tasks in D state on {mount}, longest {longest:.0f}s",
                at=at,
                mount=mount,
                attributes={"tasks": str(len(held)), "longest_s": f"{longest:.1f}"},
                stuck_tasks=tuple(t.stuck_task() for t in held),
            )
        )
    return signals
