"""Block device events from udev (removed, offline, media changed) and SCSI device state.

udev's netlink socket is watched with the event loop's reader, so a device event
arrives at once; /sys/block/*/device/state is also polled, since a SCSI device can
go "offline" without a uevent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pyudev

from agent.signals import Kind, Severity, Signal
from agent.sources.base import Emit, Source

log = logging.getLogger(__name__)


def device_event_signal(
    action: str, name: str, properties: dict[str, str], mounts: list[str], at: float
) -> Signal | None:
    """What a block uevent means for the mounts on that device (pure)."""
    if action == "remove":
        kind, severity, what = Kind.DEVICE_REMOVED, Severity.CRITICAL, "was removed"
    elif action == "change" and properties.get("DISK_MEDIA_CHANGE") == "1":
        kind, severity, what = Kind.DEVICE_OFFLINE, Severity.ERROR, "changed media"
    elif action == "offline":
        kind, severity, what = Kind.DEVICE_OFFLINE, Severity.CRITICAL, "went offline"
    else:
        return None
    return Signal(
        source="udev",
        kind=kind,
        severity=severity,
        summary=f"block device {name} {what}",
        at=at,
        mount=mounts[0] if len(mounts) == 1 else None,
        device=name,
        permanent=True,
        attributes={"action": action},
    )


class UdevSource(Source):
    name = "udev"

    def __init__(
        self, devices: dict[str, list[str]], poll_interval: float = 5.0, sys_root: str = "/sys"
    ) -> None:
        """`devices` maps each backing device's kernel name to the mounts on it."""
        super().__init__(poll_interval)
        self._devices = devices
        self._sys_root = Path(sys_root)
        self._offline: set[str] = set()

    async def run(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        monitor = None
        try:
            monitor = pyudev.Monitor.from_netlink(pyudev.Context())
            monitor.filter_by("block")
            monitor.start()
            loop.add_reader(monitor.fileno(), self._drain, monitor, emit)
        except Exception as exc:
            # No udev netlink here (containers): the state poll below still works.
            self.error = f"udev monitor unavailable: {exc}"
            log.warning("%s", self.error)
        try:
            while True:
                for signal in self._poll_states(time.time()):
                    emit(signal)
                self.tick()
                await asyncio.sleep(self.interval)
        finally:
            if monitor is not None:
                loop.remove_reader(monitor.fileno())

    def _drain(self, monitor: pyudev.Monitor, emit: Emit) -> None:
        while (device := monitor.poll(timeout=0)) is not None:
            name = device.sys_name
            if name not in self._devices:
                continue
            signal = device_event_signal(
                device.action or "", name, dict(device.properties), self._devices[name], time.time()
            )
            if signal is not None:
                emit(signal)

    def _poll_states(self, now: float) -> list[Signal]:
        out = []
        for name, mounts in self._devices.items():
            try:
                state = (self._sys_root / "block" / name / "device" / "state").read_text()
            except OSError:
                continue  # not a SCSI device: no state file
            offline = state.strip() in ("offline", "blocked", "transport-offline")
            if offline and name not in self._offline:
                signal = device_event_signal("offline", name, {}, mounts, now)
                if signal is not None:
                    out.append(signal)
            if offline:
                self._offline.add(name)
            else:
                self._offline.discard(name)
        return out
