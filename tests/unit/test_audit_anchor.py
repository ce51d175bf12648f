"""The audit chain checked against an anchor kept outside the database."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from controller.audit import GENESIS, Anchor, AuditRow, entry_hash, verify
from controller.auditanchor import AuditAnchor
from controller.store.sqlite.store import SQLiteStore
from hangwatch.errors import StartupError


def chain(n: int) -> list[AuditRow]:
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        fields = (float(seq), "alice", "admin", "maintenance on", f"host:h{seq}", "drill", True)
        row = AuditRow(seq, *fields, prev, entry_hash(prev, seq, *fields))
        rows.append(row)
        prev = row.hash
    return rows


def rehashed(rows: list[AuditRow], seq: int, detail: str) -> list[AuditRow]:
    """Row `seq` edited and every hash from it on recomputed, as a careful forger would."""
    out, prev = rows[: seq - 1], rows[seq - 2].hash if seq > 1 else GENESIS
    for row in rows[seq - 1 :]:
        row = dataclasses.replace(
            row, prev_hash=prev, detail=detail if row.seq == seq else row.detail
        )
        fields = (row.at, row.actor, row.role, row.action, row.target, row.detail, row.allowed)
        row = dataclasses.replace(row, hash=entry_hash(prev, row.seq, *fields))
        out.append(row)
        prev = row.hash
    return out


def anchor_of(rows: list[AuditRow], seq: int) -> Anchor:
    return Anchor(seq, rows[seq - 1].hash, 1_700_000_000.0)


def test_the_chain_alone_misses_truncation_and_rehashing():
    """What the anchor is for: both of these verify without one."""
    rows = chain(10)
    assert verify(rows[:7]).ok
    assert verify(rehashed(rows, 3, "nothing happened")).ok


def test_truncation_before_the_anchor_is_detected():
    rows = chain(10)
    verdict = verify(rows[:7], anchor_of(rows, 9))
    assert not verdict.ok
    assert verdict.bad_seq == 8
    assert "the log ends at row 7, but row 9 was anchored on 2023-11-14" in verdict.detail
    assert "rows 8-9 were removed" in verdict.detail


def test_rehashing_before_the_anchor_is_detected():
    rows = chain(10)
    verdict = verify(rehashed(rows, 3, "nothing happened"), anchor_of(rows, 9))
    assert not verdict.ok
    assert verdict.bad_seq == 9
    assert "row 9 no longer has the hash anchored" in verdict.detail


def test_a_single_row_edit_is_named_by_the_chain():
    rows = chain(10)
    rows[2] = dataclasses.replace(rows[2], detail="nothing happened")
    verdict = verify(rows, anchor_of(rows, 9))
    assert (verdict.bad_seq, verdict.detail) == (3, "row 3 was changed after it was written")


def test_rows_after_the_anchor_are_checked_by_the_chain_and_pass():
    rows = chain(10)
    verdict = verify(rows, anchor_of(rows, 5))
    assert verdict.ok
    assert (verdict.entries, verdict.head_seq, verdict.anchor) == (10, 10, anchor_of(rows, 5))


def test_an_empty_log_verifies_against_the_origin():
    assert verify([], Anchor(0, GENESIS, 1.0)).ok


# The anchor file and key, with a real store.


def audit_some(store: SQLiteStore, n: int) -> None:
    for i in range(n):
        store.append_audit(float(i), "alice", "admin", "automation off", "cluster", "drill")


def anchored(tmp_path: Path) -> tuple[SQLiteStore, AuditAnchor]:
    store = SQLiteStore(tmp_path / "controller.db")
    return store, AuditAnchor(tmp_path / "audit.key", tmp_path / "anchor.json", 10.0)


def test_first_start_creates_a_private_key_and_anchors_the_empty_log(tmp_path):
    store, anchor = anchored(tmp_path)
    anchor.checkpoint(store)
    assert (tmp_path / "audit.key").stat().st_mode & 0o777 == 0o600
    assert json.loads((tmp_path / "anchor.json").read_text())["seq"] == 0
    assert anchor.verify(store.list_audit()).ok
    store.close()


def test_the_anchor_follows_the_log_and_survives_a_restart(tmp_path):
    store, anchor = anchored(tmp_path)
    anchor.checkpoint(store)
    audit_some(store, 5)
    anchor.checkpoint(store)
    assert anchor.read().seq == 5
    again = AuditAnchor(tmp_path / "audit.key", tmp_path / "anchor.json", 10.0)
    audit_some(store, 2)
    again.checkpoint(store)
    assert again.read().seq == 7
    assert again.verify(store.list_audit()).ok
    store.close()


def test_truncated_rows_stop_the_anchoring_and_fail_verify(tmp_path, caplog):
    store, anchor = anchored(tmp_path)
    audit_some(store, 6)
    anchor.checkpoint(store)
    store.close()
    db = sqlite3.connect(tmp_path / "controller.db")
    db.execute("DROP TRIGGER audit_no_delete")
    db.execute("DELETE FROM audit WHERE seq > 4")
    db.commit()
    db.close()
    store = SQLiteStore(tmp_path / "controller.db")
    audit_some(store, 3)  # the log grows again past the anchored row
    anchor.checkpoint(store)
    assert anchor.read().seq == 6, "a log that lost anchored rows must not be re-anchored"
    assert "anchoring stopped" in caplog.text
    verdict = anchor.verify(store.list_audit())
    assert not verdict.ok
    assert verdict.bad_seq == 6
    assert "row 6 no longer has the hash anchored" in verdict.detail
    store.close()


def test_an_edited_anchor_file_is_not_trusted(tmp_path):
    store, anchor = anchored(tmp_path)
    audit_some(store, 3)
    anchor.checkpoint(store)
    body = json.loads((tmp_path / "anchor.json").read_text())
    (tmp_path / "anchor.json").write_text(json.dumps({**body, "seq": 1}))
    verdict = anchor.verify(store.list_audit())
    assert not verdict.ok
    assert "is not signed with this controller's key" in verdict.detail
    store.close()


def test_a_missing_anchor_file_with_an_old_key_fails_verify(tmp_path):
    store, anchor = anchored(tmp_path)
    anchor.checkpoint(store)
    (tmp_path / "anchor.json").unlink()
    again = AuditAnchor(tmp_path / "audit.key", tmp_path / "anchor.json", 10.0)
    again.checkpoint(store)
    assert not (tmp_path / "anchor.json").exists()
    assert "anchor file" in again.verify(store.list_audit()).detail
    store.close()


def test_a_key_readable_by_others_is_refused(tmp_path):
    key = tmp_path / "audit.key"
    key.write_text("k" * 64)
    key.chmod(0o644)
    with pytest.raises(StartupError, match=f"audit key {key} is readable by others"):
        AuditAnchor(key, tmp_path / "anchor.json", 10.0)
