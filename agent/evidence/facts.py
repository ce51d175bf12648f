"""What the event loop knows of a confirmed lockup, handed to the thread that gathers (pure)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from agent.evidence.reports import hung_task_reports
from agent.health import Transition
from agent.kmsg.recent import LogLine, RecentKernelLog, kernel_usec
from hangwatch import pbtime
from hangwatch.v1 import types_pb2 as pb

# The kernel log is shown from this long before the mount's first sign of trouble...
LOG_BEFORE_TROUBLE = 60.0
# ...which is looked for at most this far back among the signals behind the lockup.
MAX_LOOKBACK = 600.0


@dataclass(frozen=True)
class LockupFacts:
    mount: str
    rule: str
    kernel_release: str
    architecture: str
    trouble_since: float
    # The kernel-log window, from the kmsg source.
    kernel_log: tuple[LogLine, ...] = ()
    # Tasks the mount's own signals saw blocked (its stuck probe, hung-task reports,
    # D-state scans), with the seconds they were seen blocked.
    blocked_for: Mapping[int, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def facts_of(
    transition: Transition, recent: RecentKernelLog | None, inventory: pb.Inventory
) -> LockupFacts:
    """The facts of a LOCKED transition; `recent` is None when the kernel log is not read."""
    at = transition.at
    signs = [s.at for s in transition.evidence if at - MAX_LOOKBACK <= s.at <= at]
    trouble_since = min(signs, default=at)
    blocked: dict[int, float] = {}
    for signal in transition.evidence:
        if signal.mount != transition.mount:
            continue  # a host-wide sign (soft lockup): its tasks may be anywhere
        for task in signal.stuck_tasks:
            blocked[task.pid] = max(blocked.get(task.pid, 0.0), task.blocked_seconds)
    log_since = trouble_since - LOG_BEFORE_TROUBLE
    return LockupFacts(
        mount=transition.mount,
        rule=transition.rule,
        kernel_release=inventory.kernel_release,
        architecture=inventory.architecture,
        trouble_since=trouble_since,
        kernel_log=recent.window(kernel_usec(log_since)) if recent else (),
        blocked_for=blocked,
        notes=() if recent else ("kernel log: not read by this agent ([kmsg] enabled = false)",),
    )


def in_memory(facts: LockupFacts, pids: Collection[int] = ()) -> pb.LockupEvidence:
    """The parts that need no reading: all there is when the rest cannot be had in time.
    Hung-task reports are those about the tasks the signals named, or about `pids`."""
    lockup = pb.LockupEvidence(
        rule=facts.rule,
        kernel_release=facts.kernel_release,
        architecture=facts.architecture,
        trouble_since=pbtime.timestamp(facts.trouble_since),
        kernel_log=[line.dmesg() for line in facts.kernel_log],
        notes=facts.notes,
    )
    named = {*facts.blocked_for, *pids}
    lockup.hung_task_reports.extend(hung_task_reports(facts.kernel_log, named))
    return lockup
