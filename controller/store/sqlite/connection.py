"""The SQLite connection every store table shares: WAL, FULL sync, migrations, transactions.

Opening checks the file first (see .integrity) and refuses to serve from one that is
empty, damaged or not hangwatch's. Every method of the store runs on the store's
single worker thread (see `controller.store.dbthread`): one writer means the event
cursor is gapless and no transaction waits on another.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from controller.store.condition import StoreCondition
from controller.store.sqlite import integrity
from controller.store.sqlite.guarded import GuardedConnection
from controller.store.sqlite.walcheckpoint import WalCheckpointer
from hangwatch.errors import StoreFull

log = logging.getLogger(__name__)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in controller/store/sqlite/migrations, in order."""
    files = importlib.resources.files("controller.store.sqlite.migrations")
    out = []
    for entry in files.iterdir():
        if entry.name.endswith(".sql"):
            number, _, name = entry.name.partition("_")
            out.append((int(number), name.removesuffix(".sql"), entry.read_text("utf-8")))
    return sorted(out)


class SQLiteBase:
    def __init__(self, path: Path) -> None:
        """Opens (or creates) the store at `path`; raises StoreUnusable naming the file."""
        self.path = path
        self.condition = StoreCondition(str(path))
        integrity.refuse_empty(path)
        try:
            db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, factory=GuardedConnection
            )
        except sqlite3.Error as exc:
            raise integrity.unusable(path, exc) from None
        db.condition = self.condition
        self._db: GuardedConnection = db
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: on disk before acknowledged (docs/design.md#3-nothing-lost-nothing-doubled).
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # Checkpoints run beside the writer, not inside a commit (see .walcheckpoint).
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            integrity.check(self._db, path, max(v for v, _, _ in migrations()))
            self._migrate()
        except (sqlite3.Error, StoreFull) as exc:
            self._db.close()
            raise integrity.unusable(path, exc) from None
        except BaseException:
            self._db.close()
            raise
        self._checkpointer = WalCheckpointer(path)

    def _migrate(self) -> None:
        current = self._db.execute("PRAGMA user_version").fetchone()[0]
        for version, name, sql in migrations():
            if version <= current:
                continue
            log.info("applying schema migration %04d %s", version, name)
            # executescript runs whole statements (triggers hold semicolons) and leaves
            # our transaction open on error, so the version moves with the schema or not at all.
            try:
                self._db.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version={version};\nCOMMIT;"
                )
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested use joins the outer one."""
        if self._db.in_transaction:
            yield self._db
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            # A COMMIT that failed (disk full, I/O error) may have rolled back already:
            # a second ROLLBACK would hide the real error behind "no transaction is active".
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self._checkpointer.stop()
        self._db.close()
