"""Puts the controller's own events into the event log, as ingest does an agent's.

Stored once by id (a record announced again after a restart adds nothing), then
handed to the webhook sinks and the WatchEvents streams exactly like reported events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from controller.notify.eventbus import CursorBus
from controller.store.dbthread import DbThread
from controller.store.interface import Store
from hangwatch.v1 import types_pb2 as pb

Stored = Callable[[Sequence[pb.Event]], None]


class Announcer:
    def __init__(self, store: Store, db: DbThread, bus: CursorBus, on_stored: Stored) -> None:
        self._store = store
        self._db = db
        self._bus = bus
        self._on_stored = on_stored

    async def announce(self, events: Sequence[pb.Event], now: float) -> list[pb.Event]:
        """Stores the events not stored yet and wakes the sinks and watchers; returns them."""
        if not events:
            return []
        stored = await self._db.run(self._store.add_events, events, now)
        if stored:
            self._on_stored(stored)
            await self._bus.advance(stored[-1].cursor)
        return stored
