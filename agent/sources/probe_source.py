"""Canary probes, one runner per mount, each on its own cadence, and what each result means."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from prometheus_client import Histogram
from prometheus_client.core import Metric

from agent.signals import Kind, Severity, Signal, StuckTask
from agent.sources.base import Emit, Source
from agent.workers.probe import ProbeRunner
from agent.workers.probe_report import Outcome, ProbeResult

SOURCE = "probe"
# Enough to span healthy (sub-millisecond) to pathological (tens of seconds) latency.
LATENCY_BUCKETS: tuple[float, ...] = (
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


def latency_histogram() -> Histogram:
    """Probe latency by mount; each runner records into its mount's series."""
    return Histogram(
        "hangwatch_probe_duration_seconds",
        "Canary probe latency per mount, as the probe worker measured it",
        ["mount"],
        buckets=LATENCY_BUCKETS,
        registry=None,
    )


class ProbeSource(Source):
    name = SOURCE

    def __init__(
        self,
        mounts: list[str],
        interval: float,
        *,
        soft_deadline: float,
        hard_deadline: float,
        worker_name: str,
    ) -> None:
        """`worker_name` names each worker's probe file on its mount (see ProbeRunner)."""
        super().__init__(interval)
        self.latency = latency_histogram()
        self.runners = [
            ProbeRunner(
                mount,
                soft_deadline=soft_deadline,
                hard_deadline=hard_deadline,
                name=worker_name,
                latency=self.latency.labels(mount),
            )
            for mount in mounts
        ]
        self.last: dict[str, ProbeResult] = {}

    def collect(self) -> Iterable[Metric]:
        return self.latency.collect()

    async def run(self, emit: Emit) -> None:
        await asyncio.gather(*(self._probe(r, emit) for r in self.runners))

    async def _probe(self, runner: ProbeRunner, emit: Emit) -> None:
        while True:
            started = time.monotonic()
            # Returns by the hard deadline, whatever the mount does (docs/design.md#1-no-waiting).
            result = await runner.run_once()
            self.last[runner.mount] = result
            for signal in probe_signals(result, at=time.time()):
                emit(signal)
            self.tick()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    def mount_of_pid(self, pid: int) -> str | None:
        """The mount a probe worker works on (kernel reports name our own stuck workers)."""
        for runner in self.runners:
            if runner.worker_pid == pid:
                return runner.mount
        return None

    async def close(self) -> None:
        await asyncio.gather(*(r.close() for r in self.runners))


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
