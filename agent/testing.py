"""Test-only hooks, asked for in the [testing] section: no production agent runs them.

A burst of synthetic events exercises the real spool and delivery paths; a wedged
main loop lets a test watch the systemd watchdog pings stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from agent.config import TestingSettings
from agent.events import EventFactory
from agent.signals import Severity, Signal
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

Hook = Coroutine[Any, Any, None]


def hooks(
    settings: TestingSettings,
    publish: Callable[[pb.Event], None],
    events: EventFactory,
    started_at: float,
) -> dict[str, Hook]:
    """The hooks the settings ask for, by task name; none by default."""
    wanted: dict[str, Hook] = {}
    if settings.synthetic_events:
        wanted["synthetic"] = _synthetic(settings, publish, events)
    if settings.wedge_main_loop_after_seconds:
        wanted["wedge"] = _wedge(started_at + settings.wedge_main_loop_after_seconds)
    return wanted


async def _synthetic(
    settings: TestingSettings, publish: Callable[[pb.Event], None], events: EventFactory
) -> None:
    """`synthetic_events` events at `synthetic_rate_per_second`, numbered from 1."""
    per_tick = max(1, int(settings.synthetic_rate_per_second / 100))
    sent = 0
    while sent < settings.synthetic_events:
        for _ in range(min(per_tick, settings.synthetic_events - sent)):
            sent += 1
            publish(
                events.from_signal(
                    Signal(
                        source="testing",
                        kind="SYNTHETIC_TEST",
                        severity=Severity.INFO,
                        summary=f"synthetic event {sent}",
                        at=time.time(),
                        attributes={"n": str(sent)},
                    )
                )
            )
        await asyncio.sleep(0.01)


async def _wedge(at: float) -> None:
    """Stalls the event loop at wall-clock `at` like a blocking call would, for good."""
    await asyncio.sleep(max(0.0, at - time.time()))
    log.warning("testing: wedging the main loop on purpose")
    while True:
        time.sleep(3600)
