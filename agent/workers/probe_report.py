"""What a probe worker's answer means: one result per check of one mount.

The worker answers each request with one JSON line (`agent.workers.probe_worker`);
anything else, a missing line included, is a FAILED probe that names what the
worker said and the tail of its stderr.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass


class Outcome(enum.Enum):
    OK = "OK"
    SLOW = "SLOW"
    STUCK = "STUCK"
    FAILED = "FAILED"


@dataclass(frozen=True)
class ProbeResult:
    """One check of one mount.

    `latency` is the time the filesystem took: the worker's own step total when it
    reported (pipes and scheduling excluded, so the histogram shows the filesystem,
    not the agent), or for STUCK the time waited so far. `stuck_pid` is set while the
    probe is stuck and also on the result of a formerly stuck probe that finally
    ended, whose `latency` then says how long the mount held it.
    """

    mount: str
    outcome: Outcome
    # Wall-clock start of the probe (time.time()).
    started_at: float
    latency: float
    # "write" (create/write/fsync/read/remove) or "read" (read-only mount); "" if unknown.
    mode: str = ""
    steps: tuple[tuple[str, float], ...] = ()
    # For FAILED: the step that failed and "ENOSPC: No space left on device".
    failed_step: str = ""
    error: str = ""
    stuck_pid: int | None = None
    stuck_comm: str = ""
    stuck_state: str = ""
    stuck_wchan: str = ""
    stuck_stack: tuple[str, ...] = ()

    @property
    def stuck_since(self) -> float | None:
        """Wall-clock time the stuck probe started; a probe is stuck from its start."""
        return self.started_at if self.stuck_pid is not None else None

    @property
    def recovered(self) -> bool:
        """True for the final result of a probe that had been stuck."""
        return self.stuck_pid is not None and self.outcome is not Outcome.STUCK


def decode_report(line: bytes) -> tuple[str, tuple[tuple[str, float], ...], str, str] | None:
    """(mode, steps, failed_step, error) of a report line; None if it is not one.

    A step cannot take negative time: a line that says so is not a report.
    """
    try:
        report = json.loads(line)
        steps = tuple((str(k), float(v)) for k, v in report["steps"])
        if any(seconds < 0 for _, seconds in steps):
            return None
        return (
            str(report["mode"]),
            steps,
            str(report.get("failed_step", "")),
            str(report.get("error", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None


def parse_report(
    mount: str,
    started_at: float,
    stdout: bytes,
    stderr: bytes,
    returncode: int | None,
    *,
    soft_deadline: float,
) -> ProbeResult:
    """Turns the worker's answer into a result; anything malformed is a FAILED probe."""
    lines = stdout.strip().splitlines()
    report = decode_report(lines[-1]) if lines else None
    if report is None:
        said = stdout.decode(errors="replace").strip()
        tail = " ".join(stderr.decode(errors="replace").strip().splitlines()[-1:])
        if said:
            what = f"answered {said[:200]!r} instead of a report, then exited with {returncode}"
        else:
            what = f"exited with {returncode} without a report"
        return ProbeResult(
            mount=mount,
            outcome=Outcome.FAILED,
            started_at=started_at,
            latency=0.0,
            error=f"probe worker {what}: {tail}",
        )
    mode, steps, failed_step, error = report
    latency = sum(t for _, t in steps)
    if error:
        outcome = Outcome.FAILED
    elif latency > soft_deadline:
        outcome = Outcome.SLOW
    else:
        outcome = Outcome.OK
    return ProbeResult(
        mount=mount,
        outcome=outcome,
        started_at=started_at,
        latency=latency,
        mode=mode,
        steps=steps,
        failed_step=failed_step,
        error=error,
    )
