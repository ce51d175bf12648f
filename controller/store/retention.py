"""Prunes old events, a batch at a time, so the event log does not grow without end.

An event goes once it is older than `events.retention_days` or beyond the newest
`events.max_events`, unless a webhook sink has yet to hand it off or a dead letter
names it (the store's `prune_events` keeps those). Each batch is one short store
transaction: heartbeats and ingest queued on the store's thread run between batches.
"""

from __future__ import annotations

import asyncio
import logging
import time

from controller.config import ControllerConfig
from controller.store.dbthread import DbThread
from controller.store.interface import Store
from hangwatch.errors import StoreFull

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 60.0
BATCH = 1000
DAY = 86400.0


async def prune(store: Store, db: DbThread, config: ControllerConfig, now: float) -> int:
    """Prunes everything due at `now`; returns how many events went."""
    settings = config.events
    before = now - settings.retention_days * DAY
    sinks = [sink.name for sink in config.webhooks]
    total = 0
    while True:
        pruned = await db.run(store.prune_events, before, settings.max_events, sinks, BATCH)
        total += pruned
        if pruned < BATCH:
            break
    if total:
        log.info(
            "pruned %d events (received over %g days ago, or beyond the newest %d)",
            total,
            settings.retention_days,
            settings.max_events,
        )
    return total


async def run(store: Store, db: DbThread, config: ControllerConfig) -> None:
    while True:
        try:
            await prune(store, db, config, time.time())
        except StoreFull:
            pass  # logged once by the store; deleting needs a little space too
        except Exception:
            log.exception("pruning events failed; trying again")
        await asyncio.sleep(INTERVAL_SECONDS)
