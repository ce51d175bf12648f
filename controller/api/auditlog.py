"""Writing the audit log from the event loop: who (name and role) did what, to what.

Every decision lands here, carried out or refused; the store chains the entries
(`controller.audit`), so an edited row is found.
"""

from __future__ import annotations

import logging
import time

from controller.api.identity import Caller
from controller.store.dbthread import DbThread
from controller.store.interface import Store
from hangwatch.errors import HangwatchError

log = logging.getLogger(__name__)


class AuditLog:
    def __init__(self, store: Store, db: DbThread) -> None:
        self._store = store
        self._db = db

    async def append(
        self, who: Caller, action: str, target: str, detail: str, allowed: bool = True
    ) -> None:
        await self._db.run(
            self._store.append_audit,
            time.time(),
            who.name,
            who.role,
            action,
            target,
            detail,
            allowed,
        )

    async def refused(self, who: Caller, action: str, target: str, error: HangwatchError) -> None:
        """Keeps a refused request (allowed=False) with the reason it was refused."""
        log.warning(
            "refused %s on %s for %s (%s): %s",
            action,
            target,
            who.name,
            who.role,
            error,
            extra={"actor": who.name, "action": action, "target": target},
        )
        await self.append(who, action, target, f"refused: {error}", allowed=False)
