"""Block device progress of each mount's own device, from /proc/diskstats."""

from __future__ import annotations

from agent.procfs.diskstats import ProgressTracker, progress_signal, read_diskstats
from agent.signals import Signal
from agent.sources.base import PeriodicSource


class DiskstatsSource(PeriodicSource):
    """Watches the device each mount sits on (a partition's own counters, not its disk's:
    another partition's traffic must not pass for this mount's progress)."""

    name = "diskstats"

    def __init__(
        self, devices: dict[str, str], interval: float, stall_after: float, proc_root: str = "/proc"
    ) -> None:
        """`devices` maps mount point to the kernel name of its block device."""
        super().__init__(interval)
        self._devices = devices
        self._proc_root = proc_root
        self._tracker = ProgressTracker(stall_after, set(devices.values()))

    async def poll(self, now: float) -> list[Signal]:
        reports = self._tracker.update(read_diskstats(self._proc_root))
        return [
            progress_signal(reports[dev], at=now, mount=mount)
            for mount, dev in self._devices.items()
            if dev in reports
        ]
