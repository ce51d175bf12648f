"""Advisories and upgrade plans (a plan is one JSON record, rewritten at every step)."""

from __future__ import annotations

import dataclasses

from controller.store import records
from controller.store.interface import AdvisoryRow
from controller.store.sqlite.audit import AuditTable
from controller.upgrades.planner import Plan

_ADVISORY = "id, kernel_range, fs_type, reason, url, created_at, created_by"


class UpgradeTables(AuditTable):
    def add_advisory(self, row: AdvisoryRow) -> bool:
        cur = self._db.execute(
            f"INSERT OR IGNORE INTO advisories ({_ADVISORY}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            dataclasses.astuple(row),
        )
        return cur.rowcount == 1

    def list_advisories(self) -> list[AdvisoryRow]:
        rows = self._db.execute(f"SELECT {_ADVISORY} FROM advisories ORDER BY id")
        return [AdvisoryRow(*r) for r in rows]

    def remove_advisory(self, advisory_id: str) -> bool:
        cur = self._db.execute("DELETE FROM advisories WHERE id = ?", (advisory_id,))
        return cur.rowcount == 1

    def create_plan(self, plan: Plan, now: float) -> bool:
        cur = self._db.execute(
            "INSERT OR IGNORE INTO upgrade_plans (name, state, created_at, updated_at, record) "
            "VALUES (?, ?, ?, ?, ?)",
            (plan.name, plan.state.value, plan.created_at, now, records.dumps(plan)),
        )
        return cur.rowcount == 1

    def save_plan(
        self, plan: Plan, now: float, audit: tuple[str, str, str, str] | None = None
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE upgrade_plans SET state = ?, updated_at = ?, record = ? WHERE name = ?",
                (plan.state.value, now, records.dumps(plan), plan.name),
            )
            if audit is not None:
                actor, role, action, detail = audit
                self.append_audit(now, actor, role, action, plan.name, detail)

    def get_plan(self, name: str) -> Plan | None:
        row = self._db.execute(
            "SELECT record FROM upgrade_plans WHERE name = ?", (name,)
        ).fetchone()
        return records.loads(Plan, row[0]) if row else None

    def list_plans(self, open_only: bool = False) -> list[Plan]:
        where = " WHERE state IN ('RUNNING', 'PAUSED')" if open_only else ""
        rows = self._db.execute(f"SELECT record FROM upgrade_plans{where} ORDER BY created_at")
        return [records.loads(Plan, r[0]) for r in rows]
