"""The kernel's hung-task reports about a lockup's tasks, grouped from the log window (pure).

Grouped again from the records rather than taken from the signals: a rule's rate
limit may have kept a report from becoming a signal, and a vendor wants it anyway.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from agent.kmsg.hung_task import Report, ReportGrouper, ReportKind
from agent.kmsg.recent import LogLine, wall_time
from hangwatch import pbtime
from hangwatch.v1 import types_pb2 as pb


def _grouped(lines: Sequence[LogLine]) -> list[Report]:
    grouper = ReportGrouper()
    reports: list[Report] = []
    for line in lines:
        # The time budget runs on the kernel's own clock: the records' stamps.
        now = line.usec / 1e6 if line.usec is not None else 0.0
        reports += grouper.feed(line.text, now, usec=line.usec)[1]
    return reports + grouper.flush()


def hung_task_reports(lines: Sequence[LogLine], pids: Collection[int]) -> list[pb.KernelReport]:
    """Reports naming one of `pids` (the tasks blocked on the mount), oldest first."""
    out = []
    for report in _grouped(lines):
        if report.kind is ReportKind.HUNG_TASK and any(t.pid in pids for t in report.tasks):
            kept = pb.KernelReport(lines=report.lines)
            if report.usec is not None:
                kept.at.CopyFrom(pbtime.timestamp(wall_time(report.usec)))
            out.append(kept)
    return out
