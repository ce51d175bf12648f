"""The suspect kernel: fingerprints every confirmed lockup and drafts an advisory when one
repeats (see `controller.upgrades.drafts`).

It follows the event log from a cursor of its own kept in the store, as a webhook sink
does, so a controller that restarts misses no lockup: a sighting is kept once per
event and a draft once per fingerprint, so reading an event twice changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from controller.api.identity import SYSTEM
from controller.notify.eventbus import CursorBus
from controller.store.dbthread import DbThread
from controller.store.interface import Store
from controller.upgrades import drafts
from controller.upgrades.drafts import Draft, Sighting
from controller.upgrades.fingerprints import Fingerprint, fingerprint
from hangwatch import pbtime
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

CURSOR_SETTING = "suspects.cursor"
BATCH = 200
RECHECK_SECONDS = 5.0
LOCKUP_CONFIRMED = "LOCKUP_CONFIRMED"


class SuspectWatch:
    def __init__(
        self,
        store: Store,
        db: DbThread,
        bus: CursorBus,
        drafted: Callable[[Draft], Awaitable[None]],
    ) -> None:
        """`drafted` is awaited with each new draft."""
        self._store = store
        self._db = db
        self._bus = bus
        self._drafted = drafted

    async def run(self) -> None:
        while True:
            try:
                await self._follow()
            except Exception:
                log.exception("following confirmed lockups failed; retrying")
                await asyncio.sleep(RECHECK_SECONDS)

    async def _follow(self) -> None:
        cursor = int(await self._db.run(self._store.get_setting, CURSOR_SETTING, "0"))
        flt = admin_pb.EventFilter(kind=LOCKUP_CONFIRMED)
        while True:
            seen = self._bus.cursor
            events = await self._db.run(self._store.list_events, flt, cursor, BATCH)
            for event in events:
                try:
                    draft = await self._db.run(self.sight, event, time.time())
                except Exception:
                    log.exception("fingerprinting lockup %s failed; skipping it", event.id)
                    draft = None
                if draft is not None:
                    log.warning("advisory draft %s: %s", draft.id, draft.signature)
                    await self._drafted(draft)
                cursor = event.cursor
            if events:
                await self._db.run(self._store.set_setting, CURSOR_SETTING, str(cursor))
            if len(events) < BATCH:
                await self._bus.wait_beyond(max(seen, cursor), RECHECK_SECONDS)

    def sight(self, event: pb.Event, now: float) -> Draft | None:
        """Records one lockup's fingerprint; the new draft it makes, if any (store thread)."""
        fp = fingerprint_of(self._store, event)
        at = pbtime.seconds(event.occurred_at)
        self._store.add_sighting(Sighting(event.id, event.host_id, event.mount, at, fp.id))
        sightings = self._store.list_sightings(fp.id)
        draft = drafts.new_draft(fp, sightings, now)
        if draft is None:
            return None
        hosts = [
            h.host_id
            for h in self._store.list_hosts()
            if drafts.runs(draft, h.registration.inventory, h.registration.mounts)
        ]
        detail = drafts.summary(draft, sightings, hosts)
        audit = (SYSTEM.name, SYSTEM.role, "advisory draft", detail)
        return draft if self._store.add_draft(draft, audit) else None


def fingerprint_of(store: Store, event: pb.Event) -> Fingerprint:
    """The lockup's fingerprint, the host's registration standing in for what its
    evidence lacks (store thread)."""
    host = store.get_host(event.host_id)
    kernel, fs_type = "", ""
    if host is not None:
        kernel = host.registration.inventory.kernel_release
        fs_type = next((m.fs_type for m in host.registration.mounts if m.path == event.mount), "")
    return fingerprint(event, kernel, fs_type)
