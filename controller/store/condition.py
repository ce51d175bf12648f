"""Whether the store can write: where a full disk is noticed, logged once and shown.

A full disk fails every write until space comes back; logging each failure would bury
the log in identical lines (and a traceback per call). The condition logs the first
refused write and the first one that succeeds again, counts the ones between, and
tells its listeners (the gRPC health status) when it changes. The store calls it
from its own thread; listeners must hand over to theirs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class StoreCondition:
    def __init__(self, where: str) -> None:
        self.where = where
        # When writes started to fail for lack of space; None while they succeed.
        self.full_since: float | None = None
        # Writes refused for lack of space since the start (a counter for metrics).
        self.refused_writes = 0
        self._refused_before = 0
        self._listeners: list[Callable[[], None]] = []

    @property
    def full(self) -> bool:
        return self.full_since is not None

    def listen(self, callback: Callable[[], None]) -> None:
        """Calls `callback` (on the store's thread) whenever `full` changes."""
        self._listeners.append(callback)

    def refused(self, detail: str) -> None:
        self.refused_writes += 1
        if self.full_since is None:
            self.full_since = time.time()
            self._refused_before = self.refused_writes - 1
            log.error(
                "store %s: %s: writes are refused (RESOURCE_EXHAUSTED) until space is freed",
                self.where,
                detail,
            )
            self._changed()

    def wrote(self) -> None:
        if self.full_since is not None:
            log.warning(
                "store %s: writes succeed again after %.0f s without space (%d refused)",
                self.where,
                time.time() - self.full_since,
                self.refused_writes - self._refused_before,
            )
            self.full_since = None
            self._changed()

    def _changed(self) -> None:
        for callback in self._listeners:
            callback()
