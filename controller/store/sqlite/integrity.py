"""What the store checks of its file before it serves from it.

A damaged file used to surface as a traceback that did not name it, or worse, not at
all: with pages overwritten in the middle the controller started, acknowledged events
and only failed when a listing reached the damage. So the store refuses to start on a
file that is empty, not an SQLite database, damaged or not hangwatch's, naming the
file and the way out.

`PRAGMA quick_check` reads every page and checks the b-tree structure, records and
free list in time linear in the file: 0.3-0.7 s for a 1 M-event (340 MB) file in
the page cache here, about a tenth of `integrity_check`, which also cross-checks
every index against its table (bench/bench_store.py). Overwritten pages break the structure
it checks, so the quick one runs at every start.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hangwatch.errors import StoreFull, StoreUnusable

WAY_OUT = (
    "restore it from a backup, or move it (and its -wal and -shm files) aside to start "
    "with an empty store; see 'Start-up checks' in docs/operations.md"
)
# SQLite's answer codes for a file that is not a database or is damaged.
_DAMAGED = {sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT}


def refuse_empty(path: Path) -> None:
    """A missing file becomes a new store; an empty one is what is left of a lost one."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        raise StoreUnusable(
            f"database {path} is empty (0 bytes), not a hangwatch store: if the store was "
            f"lost, restore it from a backup; to start with an empty store, remove the file"
        )


def unusable(path: Path, exc: sqlite3.Error | StoreFull) -> StoreUnusable:
    """The refusal for an SQLite error met while opening or checking `path`."""
    if getattr(exc, "sqlite_errorcode", None) in _DAMAGED:
        return StoreUnusable(f"database {path} is damaged or not a database ({exc}): {WAY_OUT}")
    return StoreUnusable(f"cannot open database {path}: {exc}")


def check(db: sqlite3.Connection, path: Path, known_version: int) -> None:
    """Raises StoreUnusable unless `db` passes quick_check and is a hangwatch schema."""
    problems = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        found = "; ".join(p.replace("\n", " ") for p in problems)
        raise StoreUnusable(f"database {path} is damaged (quick_check: {found}): {WAY_OUT}")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == 0 and db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]:
        raise StoreUnusable(
            f"database {path} holds tables but no hangwatch schema version: another "
            "program's database? Give the controller its own --data-dir"
        )
    if version > known_version:
        raise StoreUnusable(
            f"database {path} has schema version {version}, newer than this controller "
            f"knows ({known_version}): run the newer version, or restore a backup taken "
            "before the upgrade"
        )
