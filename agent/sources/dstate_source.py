"""Tasks stuck in D state, attributed to monitored mounts through their fds and cwd."""

from __future__ import annotations

import asyncio
import time

from agent.procfs.dstate import DStateTracker, d_state_signals, psutil_tasks, scan_d_state
from agent.procfs.mountinfo import DeviceMap
from agent.signals import Signal
from agent.sources.base import PeriodicSource


class DStateSource(PeriodicSource):
    name = "dstate"

    def __init__(
        self, devices: DeviceMap, interval: float, min_seconds: float, proc_root: str = "/proc"
    ) -> None:
        super().__init__(interval)
        self._devices = devices
        self._min_seconds = min_seconds
        self._proc_root = proc_root
        self._tracker = DStateTracker()

    async def poll(self, now: float) -> list[Signal]:
        # A scan reads /proc for every process (milliseconds): off the event loop.
        scan = await asyncio.to_thread(
            scan_d_state, psutil_tasks(), self._devices, proc_root=self._proc_root
        )
        tasks = self._tracker.update(scan, time.monotonic())
        return d_state_signals(tasks, at=now, min_seconds=self._min_seconds)
