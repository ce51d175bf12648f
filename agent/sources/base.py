"""What every source has: a name, a tick, and (for most) a polling loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from agent.signals import Signal

log = logging.getLogger(__name__)

Emit = Callable[[Signal], None]


class Source:
    """A source is healthy while it ticks within a few of its intervals."""

    name = "source"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last_tick = time.monotonic()
        self.error = ""

    def tick(self) -> None:
        self.last_tick = time.monotonic()

    async def run(self, emit: Emit) -> None:
        raise NotImplementedError


class PeriodicSource(Source):
    """Polls every `interval`; a failed poll is logged and kept as `error`, never fatal."""

    async def run(self, emit: Emit) -> None:
        while True:
            try:
                for signal in await self.poll(time.time()):
                    emit(signal)
                self.error = ""
            except Exception as exc:
                if str(exc) != self.error:
                    log.warning("%s source failed: %s", self.name, exc)
                self.error = str(exc) or type(exc).__name__
            self.tick()
            await asyncio.sleep(self.interval)

    async def poll(self, now: float) -> list[Signal]:
        raise NotImplementedError
