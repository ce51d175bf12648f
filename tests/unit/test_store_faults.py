"""The store refuses to open a file it cannot serve from, naming the file and the way out."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from controller.store.sqlite.store import SQLiteStore
from hangwatch import pbtime
from hangwatch.errors import StoreUnusable
from hangwatch.ids import new_ulid
from hangwatch.v1 import types_pb2 as pb

PAGE = 4096


def filled_store(path: Path, events: int = 3000) -> None:
    """A closed store with `events` events (the WAL folded into the file by the close)."""
    store = SQLiteStore(path)
    now = time.time()
    store.add_events(
        [
            pb.Event(
                id=new_ulid(now),
                host_id="mail-1",
                host_seq=n + 1,
                mount="/srv/mail",
                kind="SYNTHETIC_TEST",
                severity=pb.SEVERITY_INFO,
                occurred_at=pbtime.timestamp(now),
                summary=f"event {n} " + "x" * 200,
            )
            for n in range(events)
        ],
        now,
    )
    store.close()


def test_a_missing_file_becomes_a_new_store(tmp_path):
    store = SQLiteStore(tmp_path / "controller.db")
    assert store.schema_version() > 0
    store.close()


def test_an_empty_file_is_refused_not_a_new_store(tmp_path):
    """A 0-byte file (what is left of a lost database) silently became a fresh store;
    now the store refuses it by name. Fails before the fix."""
    path = tmp_path / "controller.db"
    path.touch()
    with pytest.raises(StoreUnusable, match=f"database {path} is empty \\(0 bytes\\)"):
        SQLiteStore(path)
    assert path.stat().st_size == 0, "the refusal must not write to the file"


def test_a_file_that_is_not_a_database_is_refused_by_name(tmp_path):
    """It raised a bare sqlite3.DatabaseError that did not name the file. Fails before."""
    path = tmp_path / "controller.db"
    path.write_text("hosts: [mail-1, mail-2]\n" * 400)
    with pytest.raises(StoreUnusable, match=f"database {path} is damaged or not a database") as e:
        SQLiteStore(path)
    assert "restore it from a backup, or move it" in str(e.value)


@pytest.mark.parametrize("filler", [b"\0", b"\xa5"])
def test_pages_overwritten_mid_file_are_found_at_open(tmp_path, filler):
    """Overwritten pages used to go unnoticed until a listing reached them ("database disk
    image is malformed" while events were acknowledged); the quick_check at open finds
    them. Fails before the fix (the store opened)."""
    path = tmp_path / "controller.db"
    filled_store(path)
    pages = path.stat().st_size // PAGE
    with path.open("r+b") as f:
        f.seek(pages // 2 * PAGE)
        f.write(filler * (4 * PAGE))
    with pytest.raises(StoreUnusable, match=f"database {path} is damaged") as e:
        SQLiteStore(path)
    assert "docs/operations.md" in str(e.value)


def test_a_foreign_database_is_refused(tmp_path):
    path = tmp_path / "controller.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE mailboxes (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(StoreUnusable, match="no hangwatch schema version"):
        SQLiteStore(path)


def test_a_schema_from_a_newer_controller_is_refused(tmp_path):
    path = tmp_path / "controller.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 999")
    db.close()
    with pytest.raises(StoreUnusable, match="schema version 999, newer than this controller"):
        SQLiteStore(path)


def test_a_healthy_store_reopens_with_its_events(tmp_path):
    path = tmp_path / "controller.db"
    filled_store(path, events=10)
    store = SQLiteStore(path)
    assert store.last_cursor() == 10
    store.close()
