"""The store's SQLite connection class: a full disk becomes StoreFull, and is watched.

Every statement of the store goes through `execute`, `executemany` or `executescript`
of this one connection, so this is the one place that sees each write fail for lack
of space (SQLITE_FULL, which SQLite also reports when the file system says ENOSPC)
and each write that commits again afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from controller.store.condition import StoreCondition
from hangwatch.errors import StoreFull


class GuardedConnection(sqlite3.Connection):
    # Set right after sqlite3.connect(..., factory=GuardedConnection), which passes no extras.
    condition: StoreCondition
    # total_changes when the last statement outside a transaction ended: a later value
    # outside a transaction means a write committed.
    _settled = 0

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return self._guard(sql, super().execute, sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        return self._guard(sql, super().executemany, sql, parameters)

    def executescript(self, script: str, /) -> sqlite3.Cursor:
        return self._guard(script, super().executescript, script)

    def _guard(self, sql: str, run: Callable[..., sqlite3.Cursor], *args: Any) -> sqlite3.Cursor:
        try:
            cursor = run(*args)
        except sqlite3.OperationalError as exc:
            # A failed COMMIT may roll back on its own: what it counted did not land.
            self._settled = self.total_changes
            if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                self.condition.refused(str(exc))
                raise StoreFull(str(exc)) from None
            raise
        if not self.in_transaction and self.total_changes != self._settled:
            self._settled = self.total_changes
            if not sql.lstrip()[:8].upper().startswith("ROLLBACK"):
                self.condition.wrote()
        return cursor
