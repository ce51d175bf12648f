"""Canary probes: prove a mount still completes I/O without ever blocking the agent.

The agent never waits on a monitored filesystem (docs/design.md#1-no-waiting). Every
operation that touches the mount (statvfs included) runs in a separate worker process
(`agent.workers.probe_worker`); the agent only exchanges lines with it over pipes and stops
waiting at a hard deadline. A process, not a thread: a thread in D state would pin
the agent itself (it could not exit, and the interpreter's shutdown would wait on it),
while a process is merely left behind.

The worker is long-lived, one per mount, because a fresh interpreter per probe costs
some 90 ms of CPU (bench/bench_probe.py): ten mounts probed every two seconds would
take half a core against a budget of 1 %, where a request to a running worker costs
about 0.3 ms, agent and worker together. A worker past the hard deadline is usually in
D state, where even SIGKILL does nothing until the filesystem thaws, so the runner
keeps it, reports it on every check, and starts no other worker for that mount until
it exits: a frozen mount costs one process, never one per check. A worker that was
stuck, died or answered garbage is retired; the next probe starts a fresh one, so
replacements follow the probe cadence rather than a restart loop.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import enum
import itertools
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from agent.signals import Kind, Severity, Signal, StuckTask
from agent.workers.childproc import python_argv

log = logging.getLogger(__name__)

SOURCE = "probe"
# Enough to span healthy (sub-millisecond) to pathological (tens of seconds) latency.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

_REQUEST = b"probe\n"


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


class LatencyHistogram:
    """Cumulative latency histogram in Prometheus' shape (upper bounds plus +Inf).

    Kept free of prometheus_client so the runner can be tested alone; the exporter
    reads `cumulative()`, `count` and `total` into a HistogramMetricFamily.
    """

    def __init__(self, bounds: Sequence[float] = DEFAULT_BUCKETS) -> None:
        if not bounds or any(b <= a for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"bucket bounds must be non-empty and increasing: {bounds!r}")
        self.bounds = tuple(bounds)
        # One slot per bound plus the +Inf overflow.
        self._counts = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"negative latency {seconds!r}")
        # bisect_left: a value equal to a bound belongs to that bucket (le semantics).
        self._counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), ending with (inf, count)."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self._counts, strict=True):
            running += n
            out.append((bound, running))
        return out


@dataclass
class _InFlight:
    worker: asyncio.subprocess.Process
    # _exchange(): the report line, and for a retired worker its stderr and exit status.
    task: asyncio.Task[tuple[bytes, bytes, int | None]]
    started: float  # monotonic
    started_at: float  # wall clock
    reported_stuck: bool = False
    # Set once, so callers sharing the probe get the same result, counted once.
    result: ProbeResult | None = None


class ProbeRunner:
    """Probes one mount through one worker process, with at most one probe in flight.

    `run_once()` returns within `hard_deadline` whatever the mount does. Concurrent
    callers share the in-flight probe rather than starting a second one.
    """

    def __init__(
        self,
        mount: str,
        *,
        soft_deadline: float = 1.0,
        hard_deadline: float = 10.0,
        name: str | None = None,
        proc_root: str = "/proc",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < soft_deadline <= hard_deadline:
            raise ValueError("need 0 < soft_deadline <= hard_deadline")
        self.mount = mount
        self.soft_deadline = soft_deadline
        self.hard_deadline = hard_deadline
        # Stable across agent restarts (a probe file left by a killed worker is reused,
        # not accumulated) and distinct per host on a shared filesystem.
        self.name = name or f"probe-{socket.gethostname()}"
        self.histogram = LatencyHistogram()
        self._proc_root = Path(proc_root)
        self._clock = clock
        self._worker: asyncio.subprocess.Process | None = None
        self._inflight: _InFlight | None = None
        self._spawn_lock = asyncio.Lock()

    @property
    def worker_pid(self) -> int | None:
        return self._worker.pid if self._worker else None

    async def run_once(self) -> ProbeResult:
        """Starts a probe unless one is in flight, and waits for it up to its hard deadline.

        While a stuck worker lives, every call reports it as STUCK at once; the call
        that finds it ended returns its late result (`recovered`) and the next call
        starts a fresh worker.
        """
        async with self._spawn_lock:
            if self._inflight is None:
                if self._worker is None:
                    self._worker = await self._spawn()
                self._inflight = _InFlight(
                    worker=self._worker,
                    task=asyncio.create_task(_exchange(self._worker)),
                    started=self._clock(),
                    started_at=time.time(),
                )
        probe = self._inflight
        remaining = probe.started + self.hard_deadline - self._clock()
        if remaining > 0 and not probe.task.done():
            await asyncio.wait({probe.task}, timeout=remaining)
        if not probe.task.done():
            return self._stuck_result(probe)
        if probe.result is None:
            probe.result = self._finished_result(probe)
            if self._inflight is probe:
                self._inflight = None
            if probe.result.outcome in (Outcome.OK, Outcome.SLOW):
                self.histogram.observe(probe.result.latency)
        return probe.result

    async def close(self, grace: float = 1.0) -> None:
        """Kills the worker and waits up to `grace` for it.

        A worker stuck in D state cannot die before the filesystem thaws, and waiting
        for it would break docs/design.md#1-no-waiting, so it is logged and left behind: the SIGKILL
        stays pending and ends it on thaw (the init process reaps it if the agent has
        exited by then). Its probe file may remain; the next probe reuses it.
        """
        worker, self._worker = self._worker, None
        probe, self._inflight = self._inflight, None
        if worker is None:
            return
        _kill(worker)
        exited = asyncio.create_task(worker.wait())
        await asyncio.wait({exited}, timeout=grace)
        if exited.done():
            return
        exited.cancel()
        if probe is not None:
            probe.task.cancel()
        comm, state, wchan = _task_status(self._proc_root, worker.pid)
        log.warning(
            "leaving probe worker %d (%s, state %s, wchan %s) on %s%s: "
            "it cannot be killed until the filesystem thaws",
            worker.pid,
            comm,
            state,
            wchan,
            self.mount,
            f", stuck for {self._clock() - probe.started:.1f}s" if probe else "",
        )

    async def _spawn(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *python_argv("agent.workers.probe_worker", "main", self.mount, self.name),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # The agent's own cwd might be on a monitored filesystem.
            cwd="/",
        )

    def _stuck_result(self, probe: _InFlight) -> ProbeResult:
        if not probe.reported_stuck:
            probe.reported_stuck = True
            # Retire it: at EOF it exits as soon as its report is out, and only then
            # does the mount get a fresh worker.
            assert probe.worker.stdin is not None
            probe.worker.stdin.close()
        pid = probe.worker.pid
        comm, state, wchan = _task_status(self._proc_root, pid)
        return ProbeResult(
            mount=self.mount,
            outcome=Outcome.STUCK,
            started_at=probe.started_at,
            latency=self._clock() - probe.started,
            stuck_pid=pid,
            stuck_comm=comm,
            stuck_state=state,
            stuck_wchan=wchan,
            stuck_stack=_kernel_stack(self._proc_root, pid),
        )

    def _finished_result(self, probe: _InFlight) -> ProbeResult:
        line, stderr, returncode = probe.task.result()
        pid = probe.worker.pid
        if returncode is not None and self._worker is probe.worker:
            self._worker = None
        result = parse_report(
            self.mount,
            probe.started_at,
            line,
            stderr,
            returncode,
            soft_deadline=self.soft_deadline,
        )
        if not probe.reported_stuck:
            if returncode is not None:
                log.warning("probe worker %d on %s retired: %s", pid, self.mount, result.error)
            return result
        log.info("stuck probe worker %d on %s ended after %.1fs", pid, self.mount, result.latency)
        # It did finish, so it is no longer STUCK; being late makes it at least SLOW.
        outcome = Outcome.FAILED if result.outcome is Outcome.FAILED else Outcome.SLOW
        return replace(result, outcome=outcome, stuck_pid=pid)


async def _exchange(worker: asyncio.subprocess.Process) -> tuple[bytes, bytes, int | None]:
    """Asks the worker for one probe: (report line, stderr, exit status).

    The exit status is None while the worker stays in service. One that died, answered
    garbage or was retired (its stdin closed) is killed and reaped before this returns,
    so a mount never has two workers.
    """
    assert worker.stdin is not None and worker.stdout is not None and worker.stderr is not None
    try:
        worker.stdin.write(_REQUEST)
        line = await worker.stdout.readline()
    except (OSError, ValueError):  # a broken pipe; a line over the stream's 64 KiB limit
        line = b""
    if not worker.stdin.is_closing() and _decode_report(line) is not None:
        return line, b"", None
    _kill(worker)
    stderr = await worker.stderr.read()
    return line, stderr, await worker.wait()


def _kill(worker: asyncio.subprocess.Process) -> None:
    """SIGKILL, unless the worker is known to have exited.

    Not Process.kill(): its Popen polls first, and on a worker that has just exited
    that reaps it from under asyncio's child watcher, which then reports status 255.
    """
    if worker.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)


def _decode_report(line: bytes) -> tuple[str, tuple[tuple[str, float], ...], str, str] | None:
    """(mode, steps, failed_step, error) of a report line; None if it is not one."""
    try:
        report = json.loads(line)
        steps = tuple((str(k), float(v)) for k, v in report["steps"])
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
    report = _decode_report(lines[-1]) if lines else None
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


def _read_proc(path: Path) -> str:
    # The task may exit between checks; its /proc entry then simply vanishes.
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _task_status(proc_root: Path, pid: int) -> tuple[str, str, str]:
    """(comm, state letter, wchan) of a task, empty strings where unknown."""
    stat = _read_proc(proc_root / str(pid) / "stat")
    # comm is in parentheses and may itself contain ") ", hence rpartition.
    head, _, tail = stat.rpartition(") ")
    comm = head.partition("(")[2]
    state = tail[:1]
    wchan = _read_proc(proc_root / str(pid) / "wchan").strip()
    return comm, state, "" if wchan == "0" else wchan


def _kernel_stack(proc_root: Path, pid: int) -> tuple[str, ...]:
    """Function names from /proc/PID/stack (root only; empty when unreadable)."""
    functions = []
    for line in _read_proc(proc_root / str(pid) / "stack").splitlines():
        # "[<0>] percpu_rwsem_wait+0x123/0x150"
        symbol = line.partition("] ")[2].partition("+")[0].strip()
        if symbol:
            functions.append(symbol)
    return tuple(functions)


def probe_signals(result: ProbeResult, *, at: float) -> list[Signal]:
    """The signal a probe result stands for, observed at wall-clock `at`."""
    kind, severity = {
        Outcome.OK: (Kind.PROBE_OK, Severity.INFO),
        Outcome.SLOW: (Kind.PROBE_SLOW, Severity.WARNING),
        Outcome.STUCK: (Kind.PROBE_STUCK, Severity.ERROR),
        Outcome.FAILED: (Kind.PROBE_FAILED, Severity.ERROR),
    }[result.outcome]
    attributes = {
        "outcome": result.outcome.value,
        "latency_seconds": f"{result.latency:.6f}",
        "started_at": f"{result.started_at:.3f}",
    }
    if result.mode:
        attributes["mode"] = result.mode
    for step, seconds in result.steps:
        attributes[f"step_{step}_seconds"] = f"{seconds:.6f}"
    if result.error:
        attributes["error"] = result.error
        attributes["failed_step"] = result.failed_step
    stuck_tasks: tuple[StuckTask, ...] = ()
    if result.stuck_pid is not None:
        attributes["stuck_pid"] = str(result.stuck_pid)
        attributes["stuck_since"] = f"{result.started_at:.3f}"
    if result.outcome is Outcome.STUCK and result.stuck_pid is not None:
        attributes["stuck_state"] = result.stuck_state
        attributes["stuck_wchan"] = result.stuck_wchan
        stuck_tasks = (
            StuckTask(
                pid=result.stuck_pid,
                comm=result.stuck_comm,
                wchan=result.stuck_wchan,
                blocked_seconds=result.latency,
                stack=result.stuck_stack,
            ),
        )
    return [
        Signal(
            source=SOURCE,
            kind=kind,
            severity=severity,
            summary=_summary(result),
            at=at,
            mount=result.mount,
            permanent=result.outcome is Outcome.STUCK,
            attributes=attributes,
            stuck_tasks=stuck_tasks,
        )
    ]


def _summary(result: ProbeResult) -> str:
    where = f"{result.mode + ' ' if result.mode else ''}probe on {result.mount}"
    match result.outcome:
        case Outcome.STUCK:
            return (
                f"{where} stuck for {result.latency:.1f}s "
                f"(pid {result.stuck_pid}, wchan {result.stuck_wchan or '?'})"
            )
        case Outcome.FAILED:
            return f"{where} failed at {result.failed_step or 'start'}: {result.error}"
        case _ if result.recovered:
            return f"{where} completed after being stuck for {result.latency:.1f}s"
        case _:
            return f"{where} took {result.latency * 1000:.1f}ms"
