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
from agent.procfs.dstate import TaskStatus, psutil_tasks, scan_d_state
from agent.procfs.mountinfo import load_device_map
from agent.procfs.tasks import read_stack_trace
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
    lockup = in_memory(facts)
    lockup.gathered_at.CopyFrom(pbtime.timestamp(time.time()))
    try:
        lockup.kernel_build = read_text(os.path.join(proc_root, "version")).strip()
    except OSError as exc:
        lockup.notes.append(f"kernel build: cannot read /proc/version: {exc.strerror}")
    try:
        devices = load_device_map([facts.mount], proc_root=proc_root, sys_root=sys_root)
    except (OSError, ValueError) as exc:
        lockup.notes.append(f"mount table: {exc}")
    else:
        mount = describe(devices, [facts.mount], sys_root=sys_root, proc_root=proc_root)[0]
        lockup.mount.CopyFrom(mount)
        scan = scan_d_state(tasks(), devices, proc_root=proc_root)
        held = [t for t in scan.tasks if facts.mount in t.mounts]
        held.sort(key=lambda t: -facts.blocked_for.get(t.pid, 0.0))
        for task in held:
            lockup.tasks.add(
                pid=task.pid,
                comm=task.comm,
                wchan=task.wchan,
                blocked_for=pbtime.duration(facts.blocked_for.get(task.pid, 0.0)),
                trace=read_stack_trace(proc_root, task.pid),
            )
        if held and not any(t.trace for t in lockup.tasks):
            lockup.notes.append("tasks: /proc/PID/stack unreadable (needs root): wchan only")
        _device_counters(lockup, list(mount.backing_devices), proc_root, sys_root)
    bound(lockup)
    return lockup


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
