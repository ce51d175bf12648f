"""Reads the evidence of a confirmed lockup from /proc and /sys (blocking: run in a thread).

Nothing here touches the frozen filesystem (docs/design.md#1-no-waiting): the mount
table, sysfs, /proc/diskstats, /proc/version and the D-state tasks' own /proc
files are formatted by the kernel from what it holds. The kernel log comes from the
agent's memory, copied by the caller on the event loop. Each part that cannot be
read leaves a note instead of failing the whole.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from agent.evidence.bounds import bound
from agent.evidence.facts import LockupFacts, in_memory
from agent.host.mounts import describe
from agent.procfs._files import read_attr, read_text
from agent.procfs.diskstats import parse_diskstats
from agent.procfs.dstate import BlockedTask, TaskStatus, psutil_tasks, scan_d_state
from agent.procfs.mountinfo import load_device_map
from agent.procfs.tasks import read_stack_trace, read_stat, read_wchan
from hangwatch import pbtime
from hangwatch.v1 import types_pb2 as pb


def gather(
    facts: LockupFacts,
    *,
    proc_root: str = "/proc",
    sys_root: str = "/sys",
    tasks: Callable[[], Iterable[TaskStatus]] = psutil_tasks,
) -> pb.LockupEvidence:
    """Everything the evidence holds, bounded (see `agent.evidence.bounds`)."""
    read = pb.LockupEvidence(gathered_at=pbtime.timestamp(time.time()))
    try:
        read.kernel_build = read_text(os.path.join(proc_root, "version")).strip()
    except OSError as exc:
        read.notes.append(f"kernel build: cannot read /proc/version: {exc.strerror}")
    try:
        devices = load_device_map([facts.mount], proc_root=proc_root, sys_root=sys_root)
    except (OSError, ValueError) as exc:
        read.notes.append(f"mount table: {exc}")
    else:
        mount = describe(devices, [facts.mount], sys_root=sys_root, proc_root=proc_root)[0]
        read.mount.CopyFrom(mount)
        scan = scan_d_state(tasks(), devices, proc_root=proc_root)
        read.tasks.extend(_blocked(facts, scan.tasks, proc_root))
        if read.tasks and not any(t.trace for t in read.tasks):
            read.notes.append(
                "tasks: /proc/PID/stack unreadable (it needs CAP_SYS_ADMIN): wchan only"
            )
        _device_counters(read, list(mount.backing_devices), proc_root, sys_root)
    # The scan may have found blocked tasks the signals did not name: their reports too.
    lockup = in_memory(facts, {t.pid for t in read.tasks})
    lockup.MergeFrom(read)
    bound(lockup)
    return lockup


def _blocked(
    facts: LockupFacts, scanned: Iterable[BlockedTask], proc_root: str
) -> list[pb.StuckTask]:
    """Tasks in D state on the mount, the longest blocked first: those whose files lie on
    it, and those the mount's signals named that are still blocked (the agent's own
    stuck probe, whose path is not an open file yet)."""
    found = {t.pid: (t.comm, t.wchan) for t in scanned if facts.mount in t.mounts}
    for pid in facts.blocked_for:
        stat = None if pid in found else read_stat(proc_root, pid)
        if stat is not None and stat.state == "D":
            found[pid] = (stat.comm, read_wchan(proc_root, pid))
    order = sorted(found, key=lambda pid: (-facts.blocked_for.get(pid, 0.0), pid))
    return [
        pb.StuckTask(
            pid=pid,
            comm=found[pid][0],
            wchan=found[pid][1],
            blocked_for=pbtime.duration(facts.blocked_for.get(pid, 0.0)),
            trace=read_stack_trace(proc_root, pid),
        )
        for pid in order
    ]


def _device_counters(
    lockup: pb.LockupEvidence, names: list[str], proc_root: str, sys_root: str
) -> None:
    try:
        text = read_text(os.path.join(proc_root, "diskstats"))
    except OSError as exc:
        lockup.notes.append(f"devices: cannot read /proc/diskstats: {exc.strerror}")
        return
    lines = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 2:
            lines[fields[2]] = line.strip()
    for name in names:
        line = lines.get(name, "")
        counters = lockup.devices.add(device=name, diskstats=line)
        try:
            stats = parse_diskstats(line).get(name)
        except ValueError as exc:
            lockup.notes.append(f"devices: {exc}")
            stats = None
        if stats is not None:
            counters.in_flight = stats.in_flight
        # "       0        0": reads and writes in flight.
        inflight = read_attr(os.path.join(sys_root, "class", "block", name, "inflight")) or ""
        split = inflight.split()
        if len(split) == 2 and all(n.isdigit() for n in split):
            counters.in_flight_reads, counters.in_flight_writes = int(split[0]), int(split[1])
        else:
            counters.in_flight_reads = counters.in_flight_writes = -1
