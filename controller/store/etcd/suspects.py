"""Lockup sightings and the advisory drafts they lead to, in etcd (as SQLite keeps
them: a draft's decision, the advisory it becomes and its audit entry in one
transaction)."""

from __future__ import annotations

from controller.store import records
from controller.store.etcd import values
from controller.store.etcd.keys import load
from controller.store.etcd.kv import Reads, Txn
from controller.store.etcd.upgrades import UpgradeKeys
from controller.store.interface import AdvisoryRow
from controller.upgrades.drafts import Draft, DraftState, Sighting


class SuspectKeys(UpgradeKeys):
    def add_sighting(self, sighting: Sighting) -> bool:
        key = self._keys.sighting(sighting.fingerprint, sighting.event_id)

        def build(reads: Reads, txn: Txn) -> bool:
            if reads.get(key) is not None:
                return False
            txn.put(key, values.row(sighting))
            return True

        return self._leader_change(build)

    def list_sightings(self, fingerprint: str = "") -> list[Sighting]:
        prefix = self._keys.sighting(fingerprint, "")[:-1] if fingerprint else self._keys.sightings
        found = [Sighting(**load(e.value)) for e in self._kv.scan(prefix)]
        return sorted(found, key=lambda s: (s.at, s.event_id))

    def add_draft(self, draft: Draft, audit: tuple[str, str, str, str] | None = None) -> bool:
        def build(reads: Reads, txn: Txn) -> bool:
            if reads.get(self._keys.draft(draft.id)) is not None:
                return False
            txn.put(self._keys.draft(draft.id), records.dumps(draft))
            if audit is not None:
                self._audit_draft(reads, txn, draft, audit)
            return True

        return self._leader_change(build)

    def get_draft(self, draft_id: str) -> Draft | None:
        entry = self._kv.get(self._keys.draft(draft_id))
        return None if entry is None else records.loads(Draft, entry.value.decode())

    def list_drafts(self, open_only: bool = False) -> list[Draft]:
        drafts = [records.loads(Draft, e.value.decode()) for e in self._kv.scan(self._keys.drafts)]
        if open_only:
            drafts = [d for d in drafts if d.state is DraftState.OPEN]
        return sorted(drafts, key=lambda d: d.created_at)

    def decide_draft(
        self,
        draft: Draft,
        advisory: AdvisoryRow | None,
        audit: tuple[str, str, str, str] | None = None,
    ) -> bool:
        def build(reads: Reads, txn: Txn) -> bool:
            stored = reads.get(self._keys.draft(draft.id))
            if stored is None or records.loads(Draft, stored.value.decode()).state is not (
                DraftState.OPEN
            ):
                return False
            if advisory is not None:
                if reads.get(self._keys.advisory(advisory.id)) is not None:
                    return False
                txn.put(self._keys.advisory(advisory.id), values.row(advisory))
            txn.put(stored.key, records.dumps(draft))
            if audit is not None:
                self._audit_draft(reads, txn, draft, audit)
            return True

        return self._leader_change(build)

    def _audit_draft(
        self, reads: Reads, txn: Txn, draft: Draft, audit: tuple[str, str, str, str]
    ) -> None:
        actor, role, action, detail = audit
        at = draft.decided_at if draft.decided_at is not None else draft.created_at
        self._append(reads, txn, at, actor, role, action, draft.id, detail)
