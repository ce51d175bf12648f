"""Groups multi-line kernel reports (hung tasks, soft lockups) into one report each.

The kernel prints a hung-task report as a header, a `task:... state:D` line and a call
trace, one line per record, while other CPUs keep printing in between. A report is
grouped by what each line is, not by counting lines: frames and report furniture join the
open report, a new header or another kind of report closes it, and anything else passes
through untouched. A line budget and a time budget make sure every report is emitted even
when its end never comes; `flush()` is for the end of the input.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from agent.kmsg.devices import device_of_task
from agent.signals import StuckTask
from hangwatch.kernelstack import frame_function

MAX_FRAMES = 64
MAX_LINES = 80
MAX_LINE_CHARS = 300


class ReportKind(enum.Enum):
    HUNG_TASK = "hung_task"
    SOFT_LOCKUP = "soft_lockup"


_HEADERS = (
    (
        ReportKind.HUNG_TASK,
        re.compile(r"\btask (?P<comm>.+):(?P<pid>\d+) blocked for more than (?P<secs>\d+) seconds"),
    ),
    (
        ReportKind.SOFT_LOCKUP,
        re.compile(
            r"\bsoft lockup - CPU#\d+ stuck for (?P<secs>\d+)s! \[(?P<comm>.+):(?P<pid>\d+)\]"
        ),
    ),
)
# Starts of other reports: they end the open one and are classified on their own.
_OTHER_REPORT = re.compile(
    r"cut here|NMI backtrace for cpu|Sending NMI from CPU|detected (?:expedited )?stall"
    r"|self-detected stall|Kernel panic|invoked oom-killer|\bBUG: |\bOops\b|WARNING: CPU:"
    r"|kthread stack dump|Task dump for CPU|sysrq: |Showing busy workqueues|Showing all locks"
)
_NEW_STATE = re.compile(
    r"task:(?P<comm>.+?)\s+state:(?P<state>\S)\s+stack:\s*\d+\s+pid:\s*(?P<pid>\d+)"
)
_OLD_STATE = re.compile(
    r"(?P<comm>\S.*?)\s+(?P<state>[A-Z])\s*(?:[0-9a-f]{8,16}\s+)?\d+\s+(?P<pid>\d+)\s+\d+"
    r"\s+0x[0-9a-f]+"
)
# "Workqueue: writeback wb_workfn (flush-8:0)": the workqueue, and what the work is for.
_WORKQUEUE = re.compile(r"Workqueue: (?P<wq>\S+)(?: .*\((?P<target>[^()]+)\))?")
# Report lines that tell nothing on their own. 6.x adds what the task is blocked on
# ("INFO: task a:1 is blocked on a mutex likely owned by task b:2."), printed after the
# task's trace: it belongs to the report, it is not a new one.
_FURNITURE = re.compile(
    r"Call [Tt]race:|</?[A-Z]+>|\.\.\.|Tainted: .*|Not tainted .*|\"echo 0 > .*"
    r"|Blocked by coredump\.|INFO: task .+:\d+ (?:is )?(?:<\w+> )?blocked on an? .*"
    r"|(?:[0-9a-f]{8,16}\s*)+"
)
_END = "</TASK>"
_FS_FUNCTION = re.compile(r"_*(xfsaild|xfs|xlog|ext4|jbd2|nfs4?|btrfs)(?:_|$)")
# jbd2 is ext4's journal (ocfs2 uses it too, rarely on the hosts this agent watches).
_FS_OF_PREFIX = {"xlog": "xfs", "xfsaild": "xfs", "jbd2": "ext4", "nfs4": "nfs"}
_FS_OF_TASK = re.compile(
    r"(?P<xfs>xfsaild/.*|xfs-.*)|(?P<ext4>jbd2/.*|ext4-.*)|(?P<btrfs>btrfs-.*)"
    r"|(?P<nfs>nfsiod|rpciod.*)"
)


def filesystem_of_stack(stack: tuple[str, ...]) -> str | None:
    """Filesystem whose code is deepest in the stack (innermost frame first)."""
    for function in stack:
        match = _FS_FUNCTION.match(function)
        if match:
            return _FS_OF_PREFIX.get(match[1], match[1])
    return None


def filesystem_of_task(name: str) -> str | None:
    match = _FS_OF_TASK.fullmatch(name)
    return match.lastgroup if match else None


@dataclass
class _Task:
    comm: str
    pid: int
    seconds: float = 0.0
    state: str = ""
    workqueue: str = ""
    # What the work item serves, e.g. the flusher's backing device "flush-8:0".
    work_target: str = ""
    frames: list[str] = field(default_factory=list)

    def freeze(self) -> StuckTask:
        return StuckTask(
            pid=self.pid,
            comm=self.comm,
            wchan=self.frames[0] if self.frames else "",
            blocked_seconds=self.seconds,
            stack=tuple(self.frames),
        )


@dataclass(frozen=True)
class Report:
    """One grouped report. `origin` is what the caller passed with the header line."""

    kind: ReportKind
    header: str
    origin: int | None
    started_at: float
    usec: int | None
    tasks: tuple[StuckTask, ...]
    filesystem: str | None
    devices: tuple[str, ...]
    workqueues: tuple[str, ...]
    lines: tuple[str, ...]


@dataclass
class _Open:
    kind: ReportKind
    header: str
    origin: int | None
    started_at: float
    usec: int | None
    tasks: list[_Task]
    lines: list[str]
    seen: int = 1

    def add_line(self, text: str) -> None:
        if len(self.lines) < MAX_LINES:
            self.lines.append(text[:MAX_LINE_CHARS])

    def close(self) -> Report:
        tasks = tuple(task.freeze() for task in self.tasks)
        filesystem = None
        devices: list[str] = []
        for task in self.tasks:
            filesystem = (
                filesystem
                or filesystem_of_stack(tuple(task.frames))
                or filesystem_of_task(task.comm)
            )
            for name in (task.comm, task.workqueue, task.work_target):
                device = device_of_task(name) if name else None
                if device and device not in devices:
                    devices.append(device)
        return Report(
            kind=self.kind,
            header=self.header,
            origin=self.origin,
            started_at=self.started_at,
            usec=self.usec,
            tasks=tasks,
            filesystem=filesystem,
            devices=tuple(devices),
            workqueues=tuple(t.workqueue for t in self.tasks if t.workqueue),
            lines=tuple(self.lines),
        )


def _header(text: str) -> tuple[ReportKind, _Task] | None:
    # Cheap test first: the header regexes would otherwise run on every line.
    if "blocked for more than" not in text and "soft lockup" not in text:
        return None
    for kind, pattern in _HEADERS:
        match = pattern.search(text)
        if match:
            return kind, _Task(match["comm"], int(match["pid"]), float(match["secs"]))
    return None


class ReportGrouper:
    """State machine over message texts; feed every line, in order."""

    def __init__(self, line_budget: int = 400, time_budget: float = 2.0) -> None:
        self._line_budget = line_budget
        self._time_budget = time_budget
        self._open: _Open | None = None

    @property
    def pending(self) -> bool:
        return self._open is not None

    def feed(
        self, text: str, now: float, origin: int | None = None, usec: int | None = None
    ) -> tuple[bool, list[Report]]:
        """Returns (line belongs to a report, reports finished before or by this line)."""
        done = self.expire(now)
        header = _header(text)
        if header is not None:
            done += self.flush()
            kind, task = header
            self._open = _Open(kind, text, origin, now, usec, [task], [text[:MAX_LINE_CHARS]])
            return True, done
        report = self._open
        if report is None:
            return False, done
        report.seen += 1
        consumed = self._absorb(report, text)
        if consumed:
            report.add_line(text)
        ended = text == _END or (not consumed and _OTHER_REPORT.search(text) is not None)
        if ended or report.seen >= self._line_budget:
            done += self.flush()
        return consumed, done

    def expire(self, now: float) -> list[Report]:
        """Closes a report that has been open longer than the time budget."""
        report = self._open
        if report is not None and now - report.started_at > self._time_budget:
            return self.flush()
        return []

    def flush(self) -> list[Report]:
        report, self._open = self._open, None
        return [report.close()] if report is not None else []

    @staticmethod
    def _absorb(report: _Open, text: str) -> bool:
        task = report.tasks[-1]
        frame = frame_function(text)
        if frame is not None:
            function, guessed = frame
            if not guessed and len(task.frames) < MAX_FRAMES:
                task.frames.append(function)
            return True
        state = _NEW_STATE.match(text) or _OLD_STATE.fullmatch(text)
        if state is not None:
            pid = int(state["pid"])
            if pid != task.pid:
                # Another task's state and trace in the same burst (e.g. the writer that
                # holds the lock): keep it, it is usually the more telling one.
                report.tasks.append(_Task(state["comm"].strip(), pid, state=state["state"]))
            else:
                task.state = state["state"]
            return True
        workqueue = _WORKQUEUE.match(text)
        if workqueue is not None:
            task.workqueue = workqueue["wq"]
            task.work_target = workqueue["target"] or ""
            return True
        return _FURNITURE.fullmatch(text) is not None
