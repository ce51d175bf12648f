"""`hangwatchctl audit --verify` against a real controller whose database is tampered with."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable

import pytest

from controller.audit import GENESIS, AuditRow, entry_hash
from lab.localcluster import LocalCluster


def _db(cluster: LocalCluster) -> sqlite3.Connection:
    return sqlite3.connect(cluster.workdir / "controller-data" / "controller.db")


def _truncate(db: sqlite3.Connection) -> None:
    """Removes the newest two rows, as someone hiding their last actions would."""
    db.execute("DROP TRIGGER audit_no_delete")
    db.execute("DELETE FROM audit WHERE seq > (SELECT max(seq) - 2 FROM audit)")


def _rehash(db: sqlite3.Connection) -> None:
    """Rewrites row 1 and recomputes every hash after it: the chain checks out again."""
    db.execute("DROP TRIGGER audit_no_update")
    rows = [
        AuditRow(*r[:7], bool(r[7]), *r[8:]) for r in db.execute("SELECT * FROM audit ORDER BY seq")
    ]
    prev = GENESIS
    for row in rows:
        if row.seq == 1:
            row = dataclasses.replace(row, detail="nothing happened")
        fields = (row.at, row.actor, row.role, row.action, row.target, row.detail, row.allowed)
        new_hash = entry_hash(prev, row.seq, *fields)
        db.execute(
            "UPDATE audit SET detail = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (row.detail, prev, new_hash, row.seq),
        )
        prev = new_hash


def _edit(db: sqlite3.Connection) -> None:
    """Rewrites row 1 in place, without touching a hash."""
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("UPDATE audit SET detail = 'nothing happened' WHERE seq = 1")


def test_a_fresh_install_verifies_against_its_first_anchor(cluster: LocalCluster):
    """A fresh controller anchors its empty log and says what it checked. Fails before
    (there was no anchor to speak of)."""
    cluster.start_controller()
    out = cluster.ctl("audit", "--verify")
    assert out.returncode == 0, out.stderr
    assert "audit log intact up to row 0 (0 entries), anchored at row 0 on" in out.stdout


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        (_truncate, "audit log broken at row 3: the log ends at row 2, but row 4 was anchored"),
        (_rehash, "audit log broken at row 4: row 4 no longer has the hash anchored"),
        (_edit, "audit log broken at row 1: row 1 was changed after it was written"),
    ],
    ids=["truncation", "rehash", "single-row-edit"],
)
def test_tampering_before_the_anchor_fails_verify(
    cluster: LocalCluster, tamper: Callable[[sqlite3.Connection], None], words: str
):
    """Removing the newest rows, or editing a row and recomputing the hashes after it,
    used to verify "intact"; checked against the anchor written at the controller's
    clean shutdown, both now fail naming the row. Truncation and re-hashing fail before
    the fix."""
    controller = cluster.start_controller()
    for state in ("off", "on", "off", "on"):
        assert cluster.ctl("automation", state, "--reason", "drill").returncode == 0
    before = cluster.ctl("audit", "--verify")
    assert before.returncode == 0, before.stderr
    assert controller.stop() == 0  # anchors the head (row 4) on the way out
    db = _db(cluster)
    tamper(db)
    db.commit()
    db.close()
    cluster.start_controller()
    out = cluster.ctl("audit", "--verify")
    assert out.returncode == 1, out.stdout
    assert words in out.stderr
