"""Trims etcd's history: the leader compacts revisions older than the newest
`keep` ones, every `interval` seconds, so the members' database stops growing with
every heartbeat ever written. The store reads only current keys (its event cursor
is a counter, not a revision), so compaction loses nothing it needs; a member's
freed space is reclaimed by `etcdctl defrag` (docs/operations.md).
"""

from __future__ import annotations

import logging
import threading

from controller.leadership import Leadership
from controller.store.etcd.kv import EtcdKV
from hangwatch.errors import HangwatchError

log = logging.getLogger(__name__)


class Compactor:
    def __init__(self, kv: EtcdKV, leadership: Leadership, keep: int, interval: float) -> None:
        self._kv = kv
        self._leadership = leadership
        self._keep = keep
        self._interval = interval
        self._done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="etcd-compaction", daemon=True)

    def start(self) -> None:
        if self._keep > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def compact_once(self) -> int:
        """Compacts up to the newest `keep` revisions; the revision compacted to (0: none)."""
        upto = self._kv.revision() - self._keep
        if upto <= self._done:
            return 0
        try:
            self._kv.request("kv/compaction", {"revision": upto, "physical": False})
        except HangwatchError as exc:
            # Compacted already (by the members' own auto-compaction, or another leader).
            if "compacted" not in str(exc):
                raise
        self._done = upto
        log.info("compacted etcd history up to revision %d", upto)
        return upto

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if self._leadership.term is None:
                continue
            try:
                self.compact_once()
            except HangwatchError as exc:
                log.warning("etcd compaction: %s", exc)
