"""Wakes WatchEvents streams when new events are stored (no polling loop per watcher)."""

from __future__ import annotations

import asyncio
import contextlib


class CursorBus:
    def __init__(self, cursor: int = 0) -> None:
        self.cursor = cursor
        self._changed = asyncio.Condition()

    async def advance(self, cursor: int) -> None:
        if cursor <= self.cursor:
            return
        async with self._changed:
            self.cursor = cursor
            self._changed.notify_all()

    async def wait_beyond(self, cursor: int, timeout: float) -> None:
        """Returns once the cursor passed `cursor`, or after `timeout` seconds."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.cursor > cursor), timeout
                )
