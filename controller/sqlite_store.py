"""The embedded store: one SQLite file in WAL mode, schema versioned by migrations.

Every method is synchronous and meant to run on the store's single worker thread
(see `controller.dbthread`): one writer means the event cursor is gapless and no
transaction waits on another.
"""

from __future__ import annotations

import importlib.resources
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller.store import HostRecord
from hangwatch import pbtime
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in controller/migrations, in order."""
    files = importlib.resources.files("controller.migrations")
    out = []
    for entry in files.iterdir():
        if entry.name.endswith(".sql"):
            number, _, name = entry.name.partition("_")
            out.append((int(number), name.removesuffix(".sql"), entry.read_text("utf-8")))
    return sorted(out)


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before an acknowledgement goes out (invariant 3).
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        current = self._db.execute("PRAGMA user_version").fetchone()[0]
        for version, name, sql in migrations():
            if version <= current:
                continue
            log.info("applying schema migration %04d %s", version, name)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in sql.split(";\n"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={version}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    # Hosts.

    def register_host(self, request: agent_pb.RegisterRequest, now: float) -> None:
        self._db.execute(
            """INSERT INTO hosts (host_id, boot_id, agent_version, registered_at, registration)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (host_id) DO UPDATE SET boot_id = excluded.boot_id,
                 agent_version = excluded.agent_version, registered_at = excluded.registered_at,
                 registration = excluded.registration""",
            (
                request.host_id,
                request.boot_id,
                request.agent_version,
                now,
                request.SerializeToString(),
            ),
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

    def list_hosts(self) -> list[HostRecord]:
        return [_host(r) for r in self._db.execute(_HOST_SELECT + " ORDER BY host_id")]

    # Events.

    def add_events(self, events: Sequence[pb.Event], now: float) -> None:
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
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                """INSERT OR IGNORE INTO events (id, host_id, host_seq, mount, kind, severity,
                     occurred_at, received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                rows,
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def list_events(
        self,
        flt: admin_pb.EventFilter,
        since_cursor: int,
        limit: int,
        newest_first: bool = False,
    ) -> list[pb.Event]:
        where = ["cursor > ?"]
        args: list[object] = [since_cursor]
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
        out = []
        for cursor, received_at, body in self._db.execute(sql, (*args, limit)):
            event = pb.Event.FromString(body)
            event.cursor = cursor
            event.received_at.CopyFrom(pbtime.timestamp(received_at))
            out.append(event)
        return out

    def last_host_seq(self, host_id: str) -> int:
        row = self._db.execute(
            "SELECT max(host_seq) FROM events WHERE host_id = ?", (host_id,)
        ).fetchone()
        return int(row[0] or 0)

    def last_cursor(self) -> int:
        row = self._db.execute("SELECT max(cursor) FROM events").fetchone()
        return int(row[0] or 0)


_HOST_SELECT = (
    "SELECT host_id, boot_id, agent_version, registered_at, last_heartbeat_at, "
    "registration, last_heartbeat FROM hosts"
)


def _host(row: tuple[Any, ...]) -> HostRecord:
    host_id, boot_id, version, registered_at, hb_at, registration, heartbeat = row
    return HostRecord(
        host_id=host_id,
        boot_id=boot_id,
        agent_version=version,
        registered_at=registered_at,
        last_heartbeat_at=hb_at,
        registration=agent_pb.RegisterRequest.FromString(registration),
        last_heartbeat=(
            None if heartbeat is None else agent_pb.HeartbeatRequest.FromString(heartbeat)
        ),
    )
