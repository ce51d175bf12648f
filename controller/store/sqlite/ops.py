"""Operational state: maintenance windows, switches, incidents, hosts to clear."""

from __future__ import annotations

from controller.store.interface import IncidentRow, MaintenanceRow
from controller.store.sqlite.connection import SQLiteBase


class OpsTables(SQLiteBase):
    def set_maintenance(
        self,
        scope: str,
        target: str,
        enabled: bool,
        reason: str,
        actor: str,
        until: float | None,
        now: float,
    ) -> None:
        if enabled:
            self._db.execute(
                "INSERT OR REPLACE INTO maintenance (scope, target, reason, set_by, set_at, "
                "until) VALUES (?, ?, ?, ?, ?, ?)",
                (scope, target, reason, actor, now, until),
            )
        else:
            self._db.execute(
                "DELETE FROM maintenance WHERE scope = ? AND target = ?", (scope, target)
            )

    def list_maintenance(self, now: float) -> list[MaintenanceRow]:
        """Windows in force now (an expired --until window is simply over)."""
        rows = self._db.execute(
            "SELECT scope, target, reason, set_by, set_at, until FROM maintenance "
            "WHERE until IS NULL OR until > ? ORDER BY scope, target",
            (now,),
        )
        return [MaintenanceRow(*r) for r in rows]

    def get_setting(self, key: str, default: str) -> str:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def set_setting(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    def set_needs_clear(self, host_id: str, reason: str) -> bool:
        cur = self._db.execute(
            "UPDATE hosts SET needs_clear = ? WHERE host_id = ?", (reason, host_id)
        )
        return cur.rowcount == 1

    # Incidents.

    def open_incident(
        self,
        incident_id: str,
        group: str,
        host_id: str,
        at: float,
        summary: str,
        mount: str = "",
        kernel: str = "",
        fs_type: str = "",
    ) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO incidents (id, group_name, host_id, started_at, summary, "
            "mount, kernel, fs_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (incident_id, group, host_id, at, summary, mount, kernel, fs_type),
        )

    def restore_incident(self, incident_id: str, at: float) -> None:
        self._db.execute(
            "UPDATE incidents SET restored_at = ? WHERE id = ? AND restored_at IS NULL",
            (at, incident_id),
        )

    def close_incident(self, incident_id: str, at: float) -> None:
        self._db.execute(
            "UPDATE incidents SET ended_at = ? WHERE id = ? AND ended_at IS NULL", (at, incident_id)
        )

    def open_incident_for(self, group: str) -> IncidentRow | None:
        row = self._db.execute(
            f"SELECT {_INCIDENT} FROM incidents WHERE group_name = ? AND ended_at IS NULL", (group,)
        ).fetchone()
        return IncidentRow(*row) if row else None

    def list_incidents(
        self,
        open_only: bool = False,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[IncidentRow]:
        where = ["ended_at IS NULL"] if open_only else []
        args: list[object] = []
        if before is not None:
            where.append("(started_at, id) < (?, ?)")
            args.extend(before)
        sql = f"SELECT {_INCIDENT} FROM incidents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._db.execute(sql + " ORDER BY started_at DESC, id DESC LIMIT ?", (*args, limit))
        return [IncidentRow(*r) for r in rows]

    def get_incident(self, incident_id: str) -> IncidentRow | None:
        row = self._db.execute(
            f"SELECT {_INCIDENT} FROM incidents WHERE id = ?", (incident_id,)
        ).fetchone()
        return IncidentRow(*row) if row else None


_INCIDENT = (
    "id, group_name, host_id, started_at, ended_at, summary, mount, kernel, fs_type, restored_at"
)
