"""Host-wide I/O pressure from /proc/pressure/io (suspicion only: PSI does not see a
frozen filesystem, whose writers wait on a lock rather than on I/O)."""

from __future__ import annotations

from agent.procfs.pressure import (
    Pressure,
    PressureUnavailable,
    io_pressure_signal,
    read_io_pressure,
    stall,
)
from agent.signals import Signal
from agent.sources.base import PeriodicSource


class PressureSource(PeriodicSource):
    name = "psi"

    def __init__(
        self,
        interval: float,
        some_threshold: float,
        full_threshold: float,
        proc_root: str = "/proc",
    ) -> None:
        super().__init__(interval)
        self._some = some_threshold
        self._full = full_threshold
        self._proc_root = proc_root
        self._last: Pressure | None = None
        self.unavailable = ""

    async def poll(self, now: float) -> list[Signal]:
        reading = read_io_pressure(self._proc_root)
        if isinstance(reading, PressureUnavailable):
            self.unavailable = reading.reason
            return []
        before, self._last = self._last, reading
        if before is None:
            return []
        signal = io_pressure_signal(
            stall(before, reading), at=now, some_threshold=self._some, full_threshold=self._full
        )
        return [signal] if signal else []
