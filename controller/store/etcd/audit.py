"""The hash-chained audit log in etcd (docs/design.md#5-authorised-and-audited).

Appends are serialised by compare-and-set on the chain head (`P/audit-head`, the
last row's seq and hash): each new row links to the head it read, and a commit whose
head moved meanwhile is built again on the new head, so two controllers never fork
the chain. Rows are written once and never rewritten.
"""

from __future__ import annotations

from controller.audit import AuditRow, chained
from controller.store.etcd import values
from controller.store.etcd.base import EtcdBase
from controller.store.etcd.keys import dump, load
from controller.store.etcd.kv import Reads, Txn


class AuditLog(EtcdBase):
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
        return self._change(
            lambda reads, txn: self._append(
                reads, txn, at, actor, role, action, target, detail, allowed
            )
        )

    def _append(
        self,
        reads: Reads,
        txn: Txn,
        at: float,
        actor: str,
        role: str,
        action: str,
        target: str,
        detail: str,
        allowed: bool = True,
    ) -> AuditRow:
        """Adds the next row to a transaction being built (its head read is compared)."""
        head = reads.get(self._keys.audit_head)
        last = None
        if head is not None:
            value = load(head.value)
            last = (int(value["seq"]), str(value["hash"]))
        row = chained(last, at, actor, role, action, target, detail, allowed)
        txn.put(self._keys.audit_row(row.seq), values.row(row))
        txn.put(self._keys.audit_head, dump({"seq": row.seq, "hash": row.hash}))
        return row

    def last_audit_seq(self) -> int:
        head = self._kv.get(self._keys.audit_head)
        return 0 if head is None else int(load(head.value)["seq"])

    def list_audit(self, since_seq: int = 0, limit: int = 1000) -> list[AuditRow]:
        keys = self._keys
        entries = self._kv.scan(keys.audit, start=keys.audit_row(since_seq + 1), limit=limit)
        return [AuditRow(**load(e.value)) for e in entries]
