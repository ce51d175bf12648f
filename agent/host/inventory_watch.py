"""The inventory and mount descriptions the agent registers with, kept current.

A package upgrade or a remount with other features changes what the controller
should know, so both are read again now and then, in a thread (the package query
may take seconds), and a change re-registers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agent.host import inventory, mounts
from agent.procfs.mountinfo import DeviceMap, load_device_map
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

CHECK_SECONDS = 60.0


class InventoryWatch:
    """`inventory` and `mounts` as last read; `run()` reads them again every CHECK_SECONDS."""

    def __init__(self, paths: list[str], devices: DeviceMap, kernel_release: str = "") -> None:
        """`kernel_release`, when set, is reported instead of uname's."""
        self._paths = paths
        self._kernel_release = kernel_release
        self.inventory = inventory.collect(kernel_release)
        self.mounts = mounts.describe(devices, paths)

    def read(self) -> tuple[pb.Inventory, list[pb.Mount]]:
        """Inventory and mount descriptions as they are now (blocking: run in a thread)."""
        return (
            inventory.collect(self._kernel_release),
            mounts.describe(load_device_map(self._paths), self._paths),
        )

    async def run(self, changed: Callable[[], None]) -> None:
        """Calls `changed` when the kernel, the fs tools or a mount's features change."""
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            try:
                now_inventory, now_mounts = await asyncio.to_thread(self.read)
            except Exception:
                log.exception("reading the inventory failed; keeping the last one")
                continue
            if now_inventory != self.inventory or now_mounts != self.mounts:
                self.inventory, self.mounts = now_inventory, now_mounts
                changed()
