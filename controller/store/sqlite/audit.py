"""The append-only, hash-chained audit table (docs/design.md#5-authorised-and-audited)."""

from __future__ import annotations

from controller.audit import AuditRow, chained
from controller.store.sqlite.connection import SQLiteBase

_COLUMNS = "seq, at, actor, role, action, target, detail, allowed, prev_hash, hash"


class AuditTable(SQLiteBase):
    def append_audit(
        self,
        at: float,
        actor: str,
        role: str,
        action: str,
        target: str,
        detail: str,
        allowed: bool = True,
    ) -> AuditRow:
        with self._tx() as db:
            last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            row = chained(last, at, actor, role, action, target, detail, allowed)
            db.execute(
                f"INSERT INTO audit ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    row.seq,
                    row.at,
                    row.actor,
                    row.role,
                    row.action,
                    row.target,
                    row.detail,
                    int(row.allowed),
                    row.prev_hash,
                    row.hash,
                ),
            )
        return row

    def last_audit_seq(self) -> int:
        row = self._db.execute("SELECT max(seq) FROM audit").fetchone()
        return int(row[0] or 0)

    def list_audit(self, since_seq: int = 0, limit: int = 1000) -> list[AuditRow]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (since_seq, limit)
        )
        return [
            AuditRow(seq, at, actor, role, action, target, detail, bool(allowed), prev, hash_)
            for seq, at, actor, role, action, target, detail, allowed, prev, hash_ in rows
        ]
