"""Canary probes, one runner per mount, each on its own cadence."""

from __future__ import annotations

import asyncio
import time

from agent.sources.base import Emit, Source
from agent.workers.probe import ProbeResult, ProbeRunner, probe_signals


class ProbeSource(Source):
    name = "probe"

    def __init__(self, runners: list[ProbeRunner], interval: float) -> None:
        super().__init__(interval)
        self.runners = runners
        self.last: dict[str, ProbeResult] = {}

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
