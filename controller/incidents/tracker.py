"""Keeps incidents true to what customers saw, and tells people what needs them.

The coordinator asks it for the incident a proposal belongs to (opened at the first
signal of the lockup, found by looking back) and hands it every pass's cluster state
(to record service restored and the incident closed). The ledger hands it every
committed failover record, from which it derives the failover events
(`controller.incidents.notices`). Everything it says goes into the event log through
the `Announcer`, with ids that make saying it again harmless, so at start it simply
says again what recent records imply: nothing a crash interrupted is lost.
"""

from __future__ import annotations

import asyncio
import logging
import time

from controller.api.access import ADMIN_ROLES
from controller.config import ControllerConfig
from controller.failover.machine import Failover
from controller.failover.model import ClusterState, GroupView, HostView
from controller.incidents import notices, window
from controller.notify.announce import Announcer
from controller.store.dbthread import DbThread
from controller.store.interface import IncidentRow, Store
from hangwatch.ids import new_ulid
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

# LOCKUP_* events read back from a confirmation to find where the lockup began.
LOOKBACK_EVENTS = 200
# Records said again at start (each event is stored once whatever happens).
RECENT_FAILOVERS = 100
RECENT_INCIDENTS = 50
TROUBLED = ("LOCKED", "SUSPECT")


def lockup_incident(
    store: Store, host_id: str, mount: str, before_cursor: int = 0
) -> tuple[str, float] | None:
    """(id, start) of the incident the lockup going on at `host_id:mount` opens, from its
    first signal; None when none is on record (store thread)."""
    signal, floor = window.first_signal(
        store.lockup_signals(host_id, mount, before_cursor, LOOKBACK_EVENTS)
    )
    if signal is None:
        return None
    return window.incident_id(signal, floor), window.onset(signal, floor)


class IncidentTracker:
    def __init__(
        self, store: Store, db: DbThread, config: ControllerConfig, announcer: Announcer
    ) -> None:
        self._store = store
        self._db = db
        self._config = config
        self._announcer = announcer
        self._approval = notices.Approval(
            ADMIN_ROLES["ApproveFailover"], config.failover.two_person_rule
        )
        # Per failover: steps already announced and the target they named.
        self._announced: dict[str, tuple[int, str]] = {}
        self._committed: asyncio.Queue[Failover] = asyncio.Queue()

    # What the coordinator asks.

    async def open(self, group: GroupView, host: HostView | None, reason: str, now: float) -> str:
        """The id of the group's open incident, opening one for a proposal if none is."""
        opened = await self._db.run(self._open, group, host, reason, now)
        if opened is not None:
            await self._announce(
                [
                    notices.incident_event(
                        notices.INCIDENT_OPENED,
                        opened,
                        opened.started_at,
                        host.advisories if host else (),
                    )
                ],
                now,
            )
            log.warning(
                "incident %s opened on %s: started %.1fs before the proposal",
                opened.id,
                group.name,
                now - opened.started_at,
            )
            return opened.id
        incident = await self._db.run(self._store.open_incident_for, group.name)
        assert incident is not None
        return incident.id

    def _open(
        self, group: GroupView, host: HostView | None, reason: str, now: float
    ) -> IncidentRow | None:
        """Opens the incident unless the group has one (store thread)."""
        if self._store.open_incident_for(group.name) is not None:
            return None
        mounts = host.mounts if host else {}
        troubled = [m for s in TROUBLED for m in group.mounts if mounts.get(m) == s]
        mount = (troubled or [m for m in group.mounts if m in mounts] or list(group.mounts))[0]
        found = lockup_incident(self._store, group.primary, mount)
        incident_id, started = found if found else (new_ulid(now), now)
        record = self._store.get_host(group.primary)
        registered = record.registration.mounts if record else []
        fs_type = next((m.fs_type for m in registered if m.path == mount), "")
        self._store.open_incident(
            incident_id,
            group.name,
            group.primary,
            min(started, now),
            reason,
            mount=mount,
            kernel=host.kernel if host else "",
            fs_type=fs_type,
        )
        return self._store.get_incident(incident_id)

    async def review(self, state: ClusterState) -> None:
        """Records service restored and incidents closed from this pass's cluster state."""
        events = await self._db.run(self._review, state)
        await self._announce(events, state.now)

    def _review(self, state: ClusterState) -> list[pb.Event]:
        out = []
        busy = {f.group for f in state.failovers if f.state.active}
        for incident in self._store.list_incidents(open_only=True):
            group = next((g for g in state.groups if g.name == incident.group), None)
            if group is None:
                continue
            primary = state.hosts.get(group.primary)
            watched = (
                [primary.mounts[m] for m in group.mounts if m in primary.mounts] if primary else []
            )
            served = (
                primary is not None
                and primary.liveness == "HEALTHY"
                and bool(watched)
                and all(h == "OK" for h in watched)
            )
            failovers = window.failovers_of(
                incident, self._store.list_failovers(incident.group, limit=20), state.now
            )
            restored = window.restored_at(
                incident, failovers, served and group.primary == incident.host_id, state.now
            )
            closing = served and group.name not in busy
            if restored is None and closing:
                restored = state.now
            if restored is not None and incident.restored_at is None:
                self._store.restore_incident(incident.id, restored)
                out.append(notices.incident_event(notices.SERVICE_RESTORED, incident, restored))
            if closing:
                self._store.close_incident(incident.id, state.now)
                out.append(notices.incident_event(notices.INCIDENT_CLOSED, incident, state.now))
        return out

    # What the ledger tells.

    def committed(self, f: Failover | None) -> None:
        """The ledger's listener: called after each commit, never blocks (a group change
        without a failover record says nothing to people)."""
        if f is not None:
            self._committed.put_nowait(f)

    async def run(self) -> None:
        """Says again what recent records imply, then announces each committed record."""
        await self._restate()
        while True:
            f = await self._committed.get()
            try:
                await self._announce_failover(f)
            except Exception:
                log.exception("announcing failover %s failed; it is said again at start", f.id)

    async def _restate(self) -> None:
        for f in reversed(
            await self._db.run(self._store.list_failovers, "", False, RECENT_FAILOVERS)
        ):
            await self._announce_failover(f)
        events = []
        for incident in await self._db.run(self._store.list_incidents, False, RECENT_INCIDENTS):
            events.append(
                notices.incident_event(notices.INCIDENT_OPENED, incident, incident.started_at)
            )
            if incident.restored_at is not None:
                events.append(
                    notices.incident_event(notices.SERVICE_RESTORED, incident, incident.restored_at)
                )
            if incident.ended_at is not None:
                events.append(
                    notices.incident_event(notices.INCIDENT_CLOSED, incident, incident.ended_at)
                )
        await self._announce(
            sorted(events, key=lambda e: e.occurred_at.ToNanoseconds()), time.time()
        )

    async def _announce_failover(self, f: Failover) -> None:
        seen, target = self._announced.get(f.id, (0, None))
        if seen >= len(f.steps):
            return
        incident = (
            await self._db.run(self._store.get_incident, f.incident_id) if f.incident_id else None
        )
        group = self._config.group(f.group)
        mount = incident.mount if incident else (group.mounts[0] if group else "")
        events = notices.failover_events(f, seen, target, self._approval, mount)
        if f.state.active:
            self._announced[f.id] = (len(f.steps), f.to_host)
        else:
            # It moves no more: forget it (were it told again, its ids are known).
            self._announced.pop(f.id, None)
        await self._announce(events, time.time())

    async def _announce(self, events: list[pb.Event], now: float) -> None:
        for event in await self._announcer.announce(events, now):
            log.info("announced %s: %s", event.kind, event.summary)
