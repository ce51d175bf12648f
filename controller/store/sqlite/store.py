"""The embedded store: one SQLite file (see .connection), hosts and events."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from controller.store.interface import LOCKUP_KINDS, HostRecord
from controller.store.readable import readable
from controller.store.sqlite.failovers import FailoverTables
from controller.store.sqlite.ops import OpsTables
from controller.store.sqlite.suspects import SuspectTables
from controller.store.sqlite.upgrades import UpgradeTables
from controller.store.sqlite.webhooks import WebhookTables
from hangwatch import pbtime
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)


class SQLiteStore(FailoverTables, OpsTables, WebhookTables, SuspectTables, UpgradeTables):
    """Hosts and events here; the other tables live in their own mixins."""

    # Hosts.

    def register_host(self, request: agent_pb.RegisterRequest, now: float) -> None:
        """Creates or refreshes a host; a new kernel ends its 'needs clear' mark.

        A host a failover moved away from stays ineligible until a person clears it,
        or until it comes back on a different kernel (the clean start that sbd uses).
        """
        with self._tx() as db:
            before = self.get_host(request.host_id)
            kernel_changed = (
                before is not None
                and before.registration.inventory.kernel_release != request.inventory.kernel_release
            )
            db.execute(
                """INSERT INTO hosts (host_id, boot_id, agent_version, registered_at,
                     registration) VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (host_id) DO UPDATE SET boot_id = excluded.boot_id,
                     agent_version = excluded.agent_version,
                     registered_at = excluded.registered_at,
                     registration = excluded.registration""",
                (
                    request.host_id,
                    request.boot_id,
                    request.agent_version,
                    now,
                    request.SerializeToString(),
                ),
            )
            if kernel_changed:
                db.execute(
                    "UPDATE hosts SET needs_clear = '' WHERE host_id = ?", (request.host_id,)
                )

    def record_heartbeat(self, request: agent_pb.HeartbeatRequest, now: float) -> bool:
        cur = self._db.execute(
            "UPDATE hosts SET last_heartbeat_at = ?, last_heartbeat = ? "
            "WHERE host_id = ? AND boot_id = ?",
            (now, request.SerializeToString(), request.host_id, request.boot_id),
        )
        return cur.rowcount == 1

    def get_host(self, host_id: str) -> HostRecord | None:
        row = self._db.execute(_HOST_SELECT + " WHERE host_id = ?", (host_id,)).fetchone()
        return _host(row) if row else None

    def list_hosts(self, after: str = "", limit: int | None = None) -> list[HostRecord]:
        out: list[HostRecord] = []
        while limit is None or len(out) < limit:
            # Rows are read until `limit` readable ones are found (unreadable ones are few).
            want = -1 if limit is None else limit - len(out)
            rows = self._db.execute(
                _HOST_SELECT + " WHERE host_id > ? ORDER BY host_id LIMIT ?", (after, want)
            ).fetchall()
            out += [h for h in map(_host, rows) if h is not None]
            if not rows or want < 0 or len(rows) < want:
                break
            after = rows[-1][0]
        return out

    def remove_host(self, host_id: str) -> bool:
        cur = self._db.execute("DELETE FROM hosts WHERE host_id = ?", (host_id,))
        return cur.rowcount == 1

    # Events.

    def add_events(self, events: Sequence[pb.Event], now: float) -> list[pb.Event]:
        rows = []
        for event in events:
            body = pb.Event()
            body.CopyFrom(event)
            body.ClearField("cursor")
            body.ClearField("received_at")
            rows.append(
                (
                    event.id,
                    event.host_id,
                    event.host_seq,
                    event.mount,
                    event.kind,
                    event.severity,
                    pbtime.seconds(event.occurred_at),
                    now,
                    body.SerializeToString(),
                )
            )
        with self._tx() as db:
            before = self.last_cursor()
            db.executemany(
                """INSERT OR IGNORE INTO events (id, host_id, host_seq, mount, kind, severity,
                     occurred_at, received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                rows,
            )
            # One writer: the rows past `before` are exactly the ones this call stored.
            cursors = dict(db.execute("SELECT id, cursor FROM events WHERE cursor > ?", (before,)))
        stored = []
        for event in events:
            cursor = cursors.pop(event.id, None)
            if cursor is not None:
                copy = pb.Event()
                copy.CopyFrom(event)
                copy.cursor = cursor
                copy.received_at.CopyFrom(pbtime.timestamp(now))
                stored.append(copy)
        return stored

    def list_events(
        self,
        flt: admin_pb.EventFilter,
        since_cursor: int,
        limit: int,
        newest_first: bool = False,
        hosts: Sequence[str] | None = None,
        before_cursor: int = 0,
    ) -> list[pb.Event]:
        """Events after `since_cursor` that match `flt` (and are of `hosts`, when given).

        Each query reads one host's events in cursor order from events_host_cursor, or
        the log itself: a group's hosts are read one by one and merged, so that no
        query sorts, or scans past what it returns.
        """
        if hosts is None:
            return self._events(flt, since_cursor, limit, newest_first, before_cursor)
        wanted = sorted({h for h in hosts if not flt.host_id or h == flt.host_id})
        merged: list[pb.Event] = []
        for host in wanted:
            one = admin_pb.EventFilter()
            one.CopyFrom(flt)
            one.host_id = host
            merged += self._events(one, since_cursor, limit, newest_first, before_cursor)
        merged.sort(key=lambda e: e.cursor, reverse=newest_first)
        return merged[:limit]

    def _events(
        self,
        flt: admin_pb.EventFilter,
        since_cursor: int,
        limit: int,
        newest_first: bool,
        before_cursor: int,
    ) -> list[pb.Event]:
        out: list[pb.Event] = []
        while len(out) < limit:
            # Rows are read until `limit` readable ones are found (unreadable ones are few).
            want = limit - len(out)
            sql, args = events_query(flt, since_cursor, want, newest_first, before_cursor)
            rows = self._db.execute(sql, args).fetchall()
            out += [
                e for e in map(_event, rows) if readable(e, f"event {e.id} (cursor {e.cursor})")
            ]
            if len(rows) < want:
                break
            if newest_first:
                before_cursor = rows[-1][0]
            else:
                since_cursor = rows[-1][0]
        return out

    def lockup_signals(
        self, host_id: str, mount: str, before_cursor: int, limit: int
    ) -> list[pb.Event]:
        marks = ", ".join("?" * len(LOCKUP_KINDS))
        rows = self._db.execute(
            "SELECT cursor, received_at, body FROM events WHERE host_id = ? AND mount = ? "
            f"AND kind IN ({marks}) AND (? = 0 OR cursor < ?) ORDER BY cursor DESC LIMIT ?",
            (host_id, mount, *LOCKUP_KINDS, before_cursor, before_cursor, limit),
        )
        return [_event(row) for row in rows]

    def prune_events(self, before: float, keep: int, sinks: Sequence[str], batch: int) -> int:
        """Deletes up to `batch` of the oldest events received before `before` or older
        than the newest `keep`; returns how many.

        Never the newest event (the next cursor is max + 1: it must not start over),
        nothing a sink in `sinks` has yet to hand off, nor an event a dead letter names.
        Only a prefix of the log goes, so what remains stays gapless but for those.
        """
        with self._tx() as db:
            newest = self.last_cursor()
            upto = newest - 1
            handed_off = db.execute(
                f"SELECT min(cursor) FROM webhook_deliveries "
                f"WHERE sink IN ({','.join('?' * len(sinks))})",
                tuple(sinks),
            ).fetchone()[0]
            if handed_off is not None:
                upto = min(upto, handed_off)
            oldest = db.execute(
                f"SELECT cursor, received_at FROM events WHERE cursor <= ? AND {_NOT_DEAD} "
                "ORDER BY cursor LIMIT ?",
                (upto, batch),
            ).fetchall()
            last = None
            for cursor, received_at in oldest:
                if cursor > newest - keep and received_at >= before:
                    break
                last = cursor
            if last is None:
                return 0
            cur = db.execute(
                f"DELETE FROM events WHERE cursor BETWEEN ? AND ? AND {_NOT_DEAD}",
                (oldest[0][0], last),
            )
            return cur.rowcount

    def last_host_seq(self, host_id: str) -> int:
        row = self._db.execute(
            "SELECT max(host_seq) FROM events WHERE host_id = ?", (host_id,)
        ).fetchone()
        return int(row[0] or 0)

    def last_cursor(self) -> int:
        row = self._db.execute("SELECT max(cursor) FROM events").fetchone()
        return int(row[0] or 0)


_NOT_DEAD = "id NOT IN (SELECT event_id FROM webhook_dead_letters)"


def events_query(
    flt: admin_pb.EventFilter,
    since_cursor: int,
    limit: int,
    newest_first: bool,
    before_cursor: int = 0,
) -> tuple[str, tuple[object, ...]]:
    """The SELECT of `list_events` for one filter (apart from the group)."""
    where = ["cursor > ?"]
    args: list[object] = [since_cursor]
    if before_cursor:
        where.append("cursor < ?")
        args.append(before_cursor)
    for column, value in (("host_id", flt.host_id), ("kind", flt.kind), ("mount", flt.mount)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if flt.min_severity:
        where.append("severity >= ?")
        args.append(int(flt.min_severity))
    order = "DESC" if newest_first else "ASC"
    sql = (
        f"SELECT cursor, received_at, body FROM events WHERE {' AND '.join(where)} "
        f"ORDER BY cursor {order} LIMIT ?"
    )
    return sql, (*args, limit)


_HOST_SELECT = (
    "SELECT host_id, boot_id, agent_version, registered_at, last_heartbeat_at, "
    "registration, last_heartbeat, needs_clear FROM hosts"
)


def _event(row: tuple[int, float, bytes]) -> pb.Event:
    cursor, received_at, body = row
    event = pb.Event.FromString(body)
    event.cursor = cursor
    event.received_at.CopyFrom(pbtime.timestamp(received_at))
    return event


def _host(row: tuple[Any, ...]) -> HostRecord | None:
    """The host; None when its registration cannot be shown. A heartbeat that cannot be
    shown is left out alone: the host's next heartbeat replaces it."""
    host_id, boot_id, version, registered_at, hb_at, registration, heartbeat, clear = row
    reg = agent_pb.RegisterRequest.FromString(registration)
    if not readable(reg, f"host {host_id}'s registration"):
        return None
    beat = None if heartbeat is None else agent_pb.HeartbeatRequest.FromString(heartbeat)
    if beat is not None and not readable(beat, f"host {host_id}'s last heartbeat"):
        beat = None
    return HostRecord(
        host_id=host_id,
        boot_id=boot_id,
        agent_version=version,
        registered_at=registered_at,
        last_heartbeat_at=hb_at,
        registration=reg,
        last_heartbeat=beat,
        needs_clear=clear,
    )
