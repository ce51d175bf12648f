"""The incident tracker on a real SQLite store: an incident opened from the first signal
it looks back for, its restoration and close, and failover events that a restart
announces again without storing anything twice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from controller.config import ControllerConfig, GroupSettings
from controller.failover import machine
from controller.failover.model import (
    ClusterState,
    FailoverState,
    FailoverView,
    GroupView,
    HostView,
    Trigger,
)
from controller.incidents import window
from controller.incidents.tracker import IncidentTracker
from controller.notify.announce import Announcer
from controller.notify.eventbus import CursorBus
from controller.store.dbthread import DbThread
from controller.store.interface import FailoverCommit
from controller.store.sqlite.store import SQLiteStore
from hangwatch import pbtime
from hangwatch.ids import new_ulid
from hangwatch.v1 import types_pb2 as pb

NOW = 1_700_000_000.0
CONFIG = ControllerConfig(
    groups=[GroupSettings(name="mail", members=["a", "b"], mounts=["/m"], primary="a")]
)
GROUP = GroupView("mail", ("a", "b"), ("/m",), "manual", "a", 0)


def agent_event(kind: str, at: float, seq: int, **attrs: str) -> pb.Event:
    ev = pb.Event(
        id=new_ulid(at),
        host_id="a",
        host_seq=seq,
        mount="/m",
        kind=kind,
        severity=pb.SEVERITY_WARNING,
        occurred_at=pbtime.timestamp(at),
    )
    ev.evidence.attributes.update(attrs)
    return ev


def state(mount_health: str, failovers: Sequence[FailoverView] = ()) -> ClusterState:
    hosts = {h: HostView(h, "HEALTHY", 0.1, {"/m": mount_health}) for h in ("a", "b")}
    return ClusterState(NOW + 30, (GROUP,), hosts, tuple(failovers))


def test_open_restore_close_and_a_restart_that_stores_nothing_twice(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "c.db")
        db = DbThread()
        told: list[str] = []

        def tracker() -> IncidentTracker:
            bus = CursorBus(store.last_cursor())
            announcer = Announcer(
                store, db, bus, lambda events: told.extend(e.kind for e in events)
            )
            return IncidentTracker(store, db, CONFIG, announcer)

        try:
            suspected = agent_event("LOCKUP_SUSPECTED", NOW + 2, 1, stuck_since=f"{NOW + 1:.3f}")
            store.add_events(
                [
                    agent_event("LOCKUP_SUSPECTED", NOW - 500, 1),
                    agent_event("LOCKUP_CLEARED", NOW - 400, 2),
                    suspected,
                    agent_event("LOCKUP_CONFIRMED", NOW + 5, 4),
                ],
                NOW + 5,
            )
            first = tracker()
            runner = asyncio.create_task(first.run())
            host = HostView("a", "HEALTHY", 0.1, {"/m": "LOCKED"}, kernel="6.1.0")
            incident_id = await first.open(GROUP, host, "lockup confirmed on a:/m", NOW + 6)
            assert incident_id == window.incident_id(suspected, NOW - 400)
            assert await first.open(GROUP, host, "again", NOW + 7) == incident_id
            row = store.get_incident(incident_id)
            assert row is not None
            assert (row.started_at, row.mount, row.kernel) == (NOW + 1, "/m", "6.1.0")

            f = machine.propose(
                new_ulid(NOW + 6),
                "mail",
                Trigger.LOCKUP,
                "a",
                "b",
                "lockup",
                "hangwatch",
                NOW + 6,
                "lockup; needs approval: manual mode",
                incident_id=incident_id,
            )
            store.commit_failover(FailoverCommit(f), NOW + 6)
            first.committed(f)
            approved = machine.approve(f, "alice", NOW + 20)
            store.commit_failover(FailoverCommit(approved), NOW + 20)
            first.committed(approved)
            for _ in range(100):
                if "FAILOVER_APPROVED" in told:
                    break
                await asyncio.sleep(0.02)
            assert told == ["INCIDENT_OPENED", "FAILOVER_PROPOSED", "FAILOVER_APPROVED"]

            # The lockup clears while the failover is still open: served, not closed.
            busy = [FailoverView(f.id, "mail", FailoverState.APPROVED, NOW + 6)]
            await first.review(state("LOCKED", busy))
            assert told[-1] == "FAILOVER_APPROVED"
            await first.review(state("OK"))
            assert told[-2:] == ["SERVICE_RESTORED", "INCIDENT_CLOSED"]
            row = store.get_incident(incident_id)
            assert row is not None and row.restored_at == row.ended_at == NOW + 30
            runner.cancel()

            # A restart says it all again: every id is known, nothing is stored.
            stored = store.last_cursor()
            again = asyncio.create_task(tracker().run())
            await asyncio.sleep(0.5)
            again.cancel()
            assert store.last_cursor() == stored
            assert len(told) == 5
        finally:
            db.shutdown()
            store.close()

    asyncio.run(main())
