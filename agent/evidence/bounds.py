"""How big the evidence of one lockup may get, and the cutting that keeps it so (pure).

Every part has a budget of its own, so a flood in one (a chatty kernel log) cannot
push out another (the stacks); what is cut is said in `notes`. The serialized
LockupEvidence never exceeds MAX_TOTAL_BYTES: an event stays far below the 4 MiB
message limit, and the reporter's byte-capped batches keep a burst of them so too.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableSequence, Sized
from typing import Any

from hangwatch.v1 import types_pb2 as pb

# D-state tasks with their stacks: the most telling part, kept first in gather order.
MAX_TASKS = 16
MAX_TRACE_FRAMES = 24
MAX_FRAME_CHARS = 160
TASKS_BYTES = 16 * 1024
# The kernel-log window: the newest lines are kept.
MAX_LOG_LINES = 200
MAX_LINE_CHARS = 512
LOG_BYTES = 20 * 1024
# Hung-task reports: the newest are kept, each from its header down as far as it fits.
MAX_REPORTS = 4
MAX_REPORT_LINES = 80
REPORT_BYTES = 8 * 1024
REPORTS_BYTES = 16 * 1024
# Mount options and filesystem features, block devices.
MAX_MOUNT_ENTRIES = 64
MAX_VALUE_CHARS = 128
MAX_DEVICES = 8
MAX_TEXT_CHARS = 512
MAX_NOTES = 16
MAX_NOTE_CHARS = 240
# The whole LockupEvidence, serialized.
MAX_TOTAL_BYTES = 64 * 1024


def _fitting(sizes: Iterable[int], limit: int, budget: int) -> int:
    """How many of the items, taken in order, fit in `limit` items and `budget` bytes."""
    count = used = 0
    for size in sizes:
        if count == limit or used + size > budget:
            break
        count += 1
        used += size
    return count


def _cut_list(items: MutableSequence[str], limit: int, chars: int) -> None:
    del items[limit:]
    items[:] = [item[:chars] for item in items]


def _bytes(line: str) -> int:
    return len(line.encode())


def _note_cut(lockup: pb.LockupEvidence, part: str, dropped: int, kept: Sized) -> None:
    if dropped > 0:
        total = dropped + len(kept)
        lockup.notes.append(f"{part}: {dropped} of {total} cut to fit the bounds")


def _bound_task(task: pb.StuckTask) -> None:
    task.comm = task.comm[:64]
    task.wchan = task.wchan[:128]
    _cut_list(task.trace, MAX_TRACE_FRAMES, MAX_FRAME_CHARS)
    _cut_list(task.stack, MAX_TRACE_FRAMES, MAX_FRAME_CHARS)


def _bound_mount(mount: pb.Mount) -> None:
    _cut_list(mount.options, MAX_MOUNT_ENTRIES, MAX_VALUE_CHARS)
    _cut_list(mount.backing_devices, MAX_DEVICES, 64)
    features = sorted(mount.fs_features.items())[:MAX_MOUNT_ENTRIES]
    mount.fs_features.clear()
    mount.fs_features.update({k[:64]: v[:MAX_VALUE_CHARS] for k, v in features})
    for name in ("path", "fs_type", "device", "dev_id"):
        setattr(mount, name, getattr(mount, name)[:MAX_TEXT_CHARS])


def _keep_newest(items: Any, sizes: list[int], limit: int, budget: int) -> int:
    """Drops the oldest of `items` (a repeated field) beyond the bounds; returns how many."""
    dropped = len(sizes) - _fitting(reversed(sizes), limit, budget)
    del items[:dropped]
    return dropped


def bound(lockup: pb.LockupEvidence) -> None:
    """Cuts `lockup` in place to the bounds above, noting in it what was cut."""
    for name in ("rule", "kernel_release", "kernel_build", "architecture"):
        setattr(lockup, name, getattr(lockup, name)[:MAX_TEXT_CHARS])
    if lockup.HasField("mount"):
        _bound_mount(lockup.mount)

    for task in lockup.tasks:
        _bound_task(task)
    kept = _fitting((t.ByteSize() for t in lockup.tasks), MAX_TASKS, TASKS_BYTES)
    dropped = len(lockup.tasks) - kept
    del lockup.tasks[kept:]
    _note_cut(lockup, "tasks", dropped, lockup.tasks)

    lockup.kernel_log[:] = [line[:MAX_LINE_CHARS] for line in lockup.kernel_log]
    sizes = [_bytes(line) for line in lockup.kernel_log]
    dropped = _keep_newest(lockup.kernel_log, sizes, MAX_LOG_LINES, LOG_BYTES)
    _note_cut(lockup, "kernel log lines (the oldest)", dropped, lockup.kernel_log)

    for report in lockup.hung_task_reports:
        _cut_list(report.lines, MAX_REPORT_LINES, MAX_LINE_CHARS)
        del report.lines[_fitting(map(_bytes, report.lines), MAX_REPORT_LINES, REPORT_BYTES) :]
    sizes = [r.ByteSize() for r in lockup.hung_task_reports]
    dropped = _keep_newest(lockup.hung_task_reports, sizes, MAX_REPORTS, REPORTS_BYTES)
    _note_cut(lockup, "hung-task reports (the oldest)", dropped, lockup.hung_task_reports)

    del lockup.devices[MAX_DEVICES:]
    for device in lockup.devices:
        device.device = device.device[:64]
        device.diskstats = device.diskstats[:MAX_TEXT_CHARS]

    if len(lockup.notes) > MAX_NOTES:
        extra = len(lockup.notes) - MAX_NOTES + 1
        del lockup.notes[MAX_NOTES - 1 :]
        lockup.notes.append(f"{extra} more notes cut")
    lockup.notes[:] = [note[:MAX_NOTE_CHARS] for note in lockup.notes]
    _fit_total(lockup)


def _fit_total(lockup: pb.LockupEvidence) -> None:
    """The parts' budgets add up to less than the total; this is the backstop that
    holds whatever the mount table and notes bring: the log goes first, then the
    reports, then the tasks (the rest is bounded well below the total on its own)."""
    for field in (lockup.kernel_log, lockup.hung_task_reports, lockup.tasks):
        while field and lockup.ByteSize() > MAX_TOTAL_BYTES:
            del field[0 if field is not lockup.tasks else -1]
