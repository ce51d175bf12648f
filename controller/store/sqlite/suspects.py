"""Lockup sightings and advisory drafts (a draft is one JSON record, rewritten when decided)."""

from __future__ import annotations

import dataclasses

from controller.store import records
from controller.store.interface import AdvisoryRow
from controller.store.sqlite.upgrades import UpgradeTables
from controller.upgrades.drafts import Draft, DraftState, Sighting

_SIGHTING = "event_id, host_id, mount, at, fingerprint"


class SuspectTables(UpgradeTables):
    """Drafts become advisories: the advisory table is this one's too."""

    def add_sighting(self, sighting: Sighting) -> bool:
        cur = self._db.execute(
            f"INSERT OR IGNORE INTO lockup_sightings ({_SIGHTING}) VALUES (?, ?, ?, ?, ?)",
            dataclasses.astuple(sighting),
        )
        return cur.rowcount == 1

    def list_sightings(self, fingerprint: str = "") -> list[Sighting]:
        where, args = (" WHERE fingerprint = ?", (fingerprint,)) if fingerprint else ("", ())
        rows = self._db.execute(
            f"SELECT {_SIGHTING} FROM lockup_sightings{where} ORDER BY at, event_id", args
        )
        return [Sighting(*r) for r in rows]

    def add_draft(self, draft: Draft, audit: tuple[str, str, str, str] | None = None) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO advisory_drafts (id, fingerprint, state, created_at, "
                "record) VALUES (?, ?, ?, ?, ?)",
                (
                    draft.id,
                    draft.fingerprint,
                    draft.state.value,
                    draft.created_at,
                    records.dumps(draft),
                ),
            )
            if cur.rowcount != 1:
                return False
            if audit is not None:
                self._audit(draft, audit)
        return True

    def get_draft(self, draft_id: str) -> Draft | None:
        row = self._db.execute(
            "SELECT record FROM advisory_drafts WHERE id = ?", (draft_id,)
        ).fetchone()
        return records.loads(Draft, row[0]) if row else None

    def list_drafts(self, open_only: bool = False) -> list[Draft]:
        where = " WHERE state = 'OPEN'" if open_only else ""
        rows = self._db.execute(f"SELECT record FROM advisory_drafts{where} ORDER BY created_at")
        return [records.loads(Draft, r[0]) for r in rows]

    def decide_draft(
        self,
        draft: Draft,
        advisory: AdvisoryRow | None,
        audit: tuple[str, str, str, str] | None = None,
    ) -> bool:
        with self._tx() as db:
            if (
                advisory is not None
                and db.execute("SELECT 1 FROM advisories WHERE id = ?", (advisory.id,)).fetchone()
            ):
                return False
            cur = db.execute(
                "UPDATE advisory_drafts SET state = ?, record = ? WHERE id = ? AND state = ?",
                (draft.state.value, records.dumps(draft), draft.id, DraftState.OPEN.value),
            )
            if cur.rowcount != 1:
                return False
            if advisory is not None:
                self.add_advisory(advisory)  # its id is free: checked above, in this transaction
            if audit is not None:
                self._audit(draft, audit)
        return True

    def _audit(self, draft: Draft, audit: tuple[str, str, str, str]) -> None:
        actor, role, action, detail = audit
        at = draft.decided_at if draft.decided_at is not None else draft.created_at
        self.append_audit(at, actor, role, action, draft.id, detail)
