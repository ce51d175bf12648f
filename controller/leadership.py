"""Which controller may act: the failover loop, webhooks and upgrade plans run on the
leader only, and what it writes and sends carries its term (the fencing token).

With etcd, `controller.store.etcd.election.Election` is the leadership: won on a
lease, lost when the lease may be gone. With SQLite there is one controller and it
always leads, in term 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Leadership(Protocol):
    @property
    def term(self) -> int | None:
        """The term while this controller leads; None while it must not act."""

    def listen(self, callback: Callable[[int | None], None]) -> None:
        """Calls `callback(term)` on each win and `callback(None)` on each loss."""


class SoleLeader:
    """The one controller of an embedded store: leader from the start, for good."""

    term = 1

    def listen(self, callback: Callable[[int | None], None]) -> None:
        callback(self.term)
