"""Operational state in etcd: maintenance windows, switches, incidents, hosts to clear."""

from __future__ import annotations

from controller.store.etcd import values
from controller.store.etcd.base import EtcdBase
from controller.store.etcd.keys import dump, load
from controller.store.etcd.kv import Reads, Txn
from controller.store.interface import IncidentRow, MaintenanceRow


class OpsKeys(EtcdBase):
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
        key = self._keys.maintenance_of(scope, target)
        if enabled:
            row = MaintenanceRow(scope, target, reason, actor, now, until)
            self._kv.put(key, values.row(row))
        else:
            self._kv.delete(key)

    def list_maintenance(self, now: float) -> list[MaintenanceRow]:
        """Windows in force now (an expired --until window is simply over)."""
        rows = [MaintenanceRow(**load(e.value)) for e in self._kv.scan(self._keys.maintenance)]
        rows = [r for r in rows if r.until is None or r.until > now]
        return sorted(rows, key=lambda r: (r.scope, r.target))

    def get_setting(self, key: str, default: str) -> str:
        entry = self._kv.get(self._keys.setting(key))
        return default if entry is None else entry.value.decode()

    def set_setting(self, key: str, value: str) -> None:
        self._kv.put(self._keys.setting(key), value)

    def set_needs_clear(self, host_id: str, reason: str) -> bool:
        def build(reads: Reads, txn: Txn) -> bool:
            if reads.get(self._keys.host(host_id)) is None:
                return False
            if reason:
                txn.put(self._keys.needs_clear(host_id), reason)
            else:
                txn.delete(self._keys.needs_clear(host_id))
            return True

        return self._change(build)

    # Incidents (opened and closed by the leader's coordinator).

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
        def build(reads: Reads, txn: Txn) -> None:
            key = self._keys.incident(incident_id)
            if reads.get(key) is None:
                row = IncidentRow(
                    incident_id, group, host_id, at, None, summary, mount, kernel, fs_type
                )
                txn.put(key, values.row(row))

        self._leader_change(build)

    def restore_incident(self, incident_id: str, at: float) -> None:
        self._set_once(incident_id, "restored_at", at)

    def close_incident(self, incident_id: str, at: float) -> None:
        self._set_once(incident_id, "ended_at", at)

    def _set_once(self, incident_id: str, field: str, at: float) -> None:
        """Sets an incident's time `field` unless it is set (a later call changes nothing)."""

        def build(reads: Reads, txn: Txn) -> None:
            entry = reads.get(self._keys.incident(incident_id))
            if entry is not None and load(entry.value).get(field) is None:
                txn.put(entry.key, dump({**load(entry.value), field: at}))

        self._leader_change(build)

    def open_incident_for(self, group: str) -> IncidentRow | None:
        return next((r for r in self._incidents() if r.group == group and r.ended_at is None), None)

    def list_incidents(
        self,
        open_only: bool = False,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[IncidentRow]:
        rows = [
            r
            for r in self._incidents()
            if (not open_only or r.ended_at is None)
            and (before is None or (r.started_at, r.id) < before)
        ]
        rows.sort(key=lambda r: (r.started_at, r.id), reverse=True)
        return rows[:limit]

    def get_incident(self, incident_id: str) -> IncidentRow | None:
        entry = self._kv.get(self._keys.incident(incident_id))
        return None if entry is None else IncidentRow(**load(entry.value))

    def _incidents(self) -> list[IncidentRow]:
        return [IncidentRow(**load(e.value)) for e in self._kv.scan(self._keys.incidents)]
