"""An SQLite store as the source of a migration (controller.store.transfer.Source)."""

from __future__ import annotations

from collections.abc import Iterator

from controller.audit import AuditRow
from controller.failover.machine import Failover
from controller.store import records
from controller.store.interface import (
    AdvisoryRow,
    DeadLetterRow,
    GroupRow,
    HostRecord,
    IncidentRow,
    MaintenanceRow,
)
from controller.store.sqlite.store import SQLiteStore
from controller.store.transfer import AlertRow, CommandRow, FenceRow
from controller.upgrades.planner import Plan
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb

_PAGE = 1000


class SQLiteExport(SQLiteStore):
    def hosts(self) -> Iterator[HostRecord]:
        yield from self.list_hosts()

    def events(self) -> Iterator[pb.Event]:
        cursor = 0
        while page := self.list_events(admin_pb.EventFilter(), cursor, _PAGE):
            yield from page
            cursor = page[-1].cursor

    def group_rows(self) -> Iterator[GroupRow]:
        yield from self.groups().values()

    def failovers(self) -> Iterator[tuple[Failover, float]]:
        rows = self._db.execute("SELECT record, updated_at FROM failovers ORDER BY created_at")
        for record, updated_at in rows:
            yield records.loads(Failover, record), float(updated_at)

    def commands(self) -> Iterator[CommandRow]:
        rows = self._db.execute(
            "SELECT host_id, created_at, body, result, reported_at FROM commands ORDER BY rowid"
        )
        for host_id, created_at, body, result, reported_at in rows:
            yield CommandRow(
                host_id,
                created_at,
                pb.Command.FromString(body),
                None if result is None else pb.CommandResult.FromString(result),
                reported_at,
            )

    def fence_results(self) -> Iterator[FenceRow]:
        rows = self._db.execute("SELECT failover_id, ok, detail, at FROM fence_results")
        for failover_id, ok, detail, at in rows:
            yield FenceRow(failover_id, bool(ok), detail, at)

    def audit(self) -> Iterator[AuditRow]:
        seq = 0
        while page := self.list_audit(seq, _PAGE):
            yield from page
            seq = page[-1].seq

    def maintenance(self) -> Iterator[MaintenanceRow]:
        rows = self._db.execute(
            "SELECT scope, target, reason, set_by, set_at, until FROM maintenance"
        )
        yield from (MaintenanceRow(*r) for r in rows)

    def settings(self) -> Iterator[tuple[str, str]]:
        yield from self._db.execute("SELECT key, value FROM settings")

    def incidents(self) -> Iterator[IncidentRow]:
        yield from self.list_incidents(limit=-1)

    def webhook_cursors(self) -> Iterator[tuple[str, int]]:
        yield from self._db.execute("SELECT sink, cursor FROM webhook_deliveries")

    def dead_letters(self) -> Iterator[tuple[DeadLetterRow, float | None]]:
        rows = self._db.execute(
            "SELECT d.id, d.sink, d.event_id, d.attempts, d.last_error, d.failed_at, "
            "coalesce(e.cursor, 0), d.requeued_at FROM webhook_dead_letters d "
            "LEFT JOIN events e ON e.id = d.event_id ORDER BY d.id"
        )
        for *letter, requeued_at in rows:
            yield DeadLetterRow(*letter), requeued_at

    def last_dead_letter_id(self) -> int:
        row = self._db.execute(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence "
            "WHERE name = 'webhook_dead_letters'), 0), coalesce(max(id), 0)) "
            "FROM webhook_dead_letters"
        ).fetchone()
        return int(row[0])

    def alerts(self) -> Iterator[AlertRow]:
        rows = self._db.execute("SELECT sink, host_id, mount, dedup_key FROM webhook_alerts")
        yield from (AlertRow(*r) for r in rows)

    def advisories(self) -> Iterator[AdvisoryRow]:
        yield from self.list_advisories()

    def plans(self) -> Iterator[tuple[Plan, float]]:
        rows = self._db.execute("SELECT record, updated_at FROM upgrade_plans ORDER BY created_at")
        for record, updated_at in rows:
            yield records.loads(Plan, record), float(updated_at)
