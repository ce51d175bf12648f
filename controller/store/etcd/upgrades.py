"""Advisories and upgrade plans in etcd (a plan is one record, rewritten at every step
by the leader's upgrade driver, with its audit entry in the same transaction)."""

from __future__ import annotations

from controller.store import records
from controller.store.etcd import values
from controller.store.etcd.audit import AuditLog
from controller.store.etcd.keys import load
from controller.store.etcd.kv import Reads, Txn
from controller.store.interface import AdvisoryRow
from controller.upgrades.planner import Plan, PlanState


class UpgradeKeys(AuditLog):
    def add_advisory(self, row: AdvisoryRow) -> bool:
        def build(reads: Reads, txn: Txn) -> bool:
            if reads.get(self._keys.advisory(row.id)) is not None:
                return False
            txn.put(self._keys.advisory(row.id), values.row(row))
            return True

        return self._change(build)

    def list_advisories(self) -> list[AdvisoryRow]:
        rows = [AdvisoryRow(**load(e.value)) for e in self._kv.scan(self._keys.advisories)]
        return sorted(rows, key=lambda r: r.id)

    def remove_advisory(self, advisory_id: str) -> bool:
        def build(reads: Reads, txn: Txn) -> bool:
            if reads.get(self._keys.advisory(advisory_id)) is None:
                return False
            txn.delete(self._keys.advisory(advisory_id))
            return True

        return self._change(build)

    def create_plan(self, plan: Plan, now: float) -> bool:
        def build(reads: Reads, txn: Txn) -> bool:
            if reads.get(self._keys.plan(plan.name)) is not None:
                return False
            txn.put(self._keys.plan(plan.name), self._plan_value(plan, now))
            return True

        return self._leader_change(build)

    def save_plan(
        self, plan: Plan, now: float, audit: tuple[str, str, str, str] | None = None
    ) -> None:
        def build(reads: Reads, txn: Txn) -> None:
            if reads.get(self._keys.plan(plan.name)) is None:
                return
            txn.put(self._keys.plan(plan.name), self._plan_value(plan, now))
            if audit is not None:
                actor, role, action, detail = audit
                self._append(reads, txn, now, actor, role, action, plan.name, detail)

        self._leader_change(build)

    def get_plan(self, name: str) -> Plan | None:
        entry = self._kv.get(self._keys.plan(name))
        return None if entry is None else records.from_json(Plan, load(entry.value)["record"])

    def list_plans(self, open_only: bool = False) -> list[Plan]:
        plans = [
            records.from_json(Plan, load(e.value)["record"])
            for e in self._kv.scan(self._keys.plans)
        ]
        if open_only:
            plans = [p for p in plans if p.state in (PlanState.RUNNING, PlanState.PAUSED)]
        return sorted(plans, key=lambda p: p.created_at)

    def _plan_value(self, plan: Plan, now: float) -> bytes:
        return values.record(plan, now, self.term)
