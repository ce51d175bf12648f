"""The agent's own health: sources that stopped ticking and a spool that stopped answering.

Either is reported as a signal (and so as an event) once when it starts and, for a
source, once when it ends; the heartbeat carries the stalled sources too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from agent.signals import Kind, Severity, Signal
from agent.sources.base import Emit, Source
from agent.workers.spool import Spool

# A source that has not ticked for this many intervals (at least STALL_MIN_SECONDS) stalled.
STALL_INTERVALS = 5
STALL_MIN_SECONDS = 10.0


class SelfCheck:
    def __init__(
        self, sources: Sequence[Source], spool: Spool, *, spool_stuck_after: float, state_dir: str
    ) -> None:
        self._sources = sources
        self._spool = spool
        self._spool_stuck_after = spool_stuck_after
        self._state_dir = state_dir
        self._spool_stuck = False
        # Names of the sources that stalled and have not ticked since.
        self.stalled: set[str] = set()

    def check(self, emit: Emit) -> None:
        mono, now = time.monotonic(), time.time()
        for source in self._sources:
            late = mono - source.last_tick
            stalled = late > max(STALL_INTERVALS * source.interval, STALL_MIN_SECONDS)
            if stalled == (source.name in self.stalled):
                continue
            if stalled:
                self.stalled.add(source.name)
                summary = f"source {source.name} has not run for {late:.0f}s" + (
                    f": {source.error}" if source.error else ""
                )
            else:
                self.stalled.discard(source.name)
                summary = f"source {source.name} runs again"
            emit(
                Signal(
                    source="agent",
                    kind=Kind.SOURCE_STALLED if stalled else Kind.SOURCE_RECOVERED,
                    severity=Severity.ERROR if stalled else Severity.INFO,
                    at=now,
                    summary=summary,
                    attributes={"stalled_source": source.name},
                )
            )
        busy = self._spool.busy_for(mono)
        stuck = busy > self._spool_stuck_after or bool(self._spool.failed)
        if stuck and not self._spool_stuck:
            emit(
                Signal(
                    source="agent",
                    kind=Kind.SPOOL_STUCK,
                    severity=Severity.ERROR,
                    at=now,
                    summary=f"event spool in {self._state_dir} is stuck "
                    f"({self._spool.failed or f'a write pending for {busy:.0f}s'}); "
                    "events are kept in memory",
                    attributes={"busy_s": f"{busy:.1f}"},
                )
            )
        self._spool_stuck = stuck

    def collect(self) -> Iterator[Metric]:
        mono = time.monotonic()
        ticks = GaugeMetricFamily(
            "hangwatch_source_last_tick_age_seconds",
            "Seconds since each signal source last ran",
            labels=["source"],
        )
        for source in list(self._sources):
            ticks.add_metric([source.name], max(0.0, mono - source.last_tick))
        yield ticks
