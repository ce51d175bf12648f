"""Leader election on an etcd lease, and the term every leader-only write is fenced by.

A controller campaigns by granting itself a lease (TTL `ttl` seconds) and creating
`P/leader` on it only if the key is absent (a transaction comparing its
create_revision with 0). The revision of that transaction, the key's create_revision,
is the term: it grows with every new leader, and no two leaders share one.

Leases alone are not locks: a leader paused past its TTL (SIGSTOP, a long GC, a
partition) can wake up believing it still leads. So leadership is used twice:
- etcd checks it: every leader-only write is a transaction that also compares the
  leader key's create_revision with the writer's term (`kv.EtcdKV.atomically` with
  this election as the fence). Once the lease has expired the key is gone or was
  created again by the next leader, and the write is refused whatever the writer
  believes.
- this process checks it before acting outside etcd (commands, fencing, hooks):
  `term` is None from the moment the lease could be close to expiring. The lease
  lives at least TTL from the moment its last successful keepalive was sent, so the
  term is held until that moment plus `renew_deadline`, which the settings keep at
  or below 80 % of the TTL: the rest covers clock-rate drift between this host and the
  etcd leader and an action already under way when the check passed. The clock is
  CLOCK_BOOTTIME, which keeps counting while the process is stopped or the host
  suspended.
A lost term is never resumed: the next win is a new lease and a new term.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from controller.store.etcd.kv import EtcdKV, Txn
from hangwatch.errors import HangwatchError

log = logging.getLogger(__name__)


def clock() -> float:
    """Seconds on a clock that counts time stopped and suspended too."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class Election:
    def __init__(
        self,
        kv: EtcdKV,
        key: str,
        identity: str,
        *,
        ttl: int,
        renew_deadline: float,
    ) -> None:
        """`identity`: what followers read as the leader (its address, for redirects)."""
        if not 0 < renew_deadline < ttl:
            raise ValueError("renew_deadline must be between 0 and the lease TTL")
        self._kv = kv
        self._key = key
        self.identity = identity
        self.ttl = ttl
        self.renew_deadline = renew_deadline
        # Two keepalives may fail before the deadline passes.
        self.renew_interval = renew_deadline / 3
        self.poll_interval = min(0.5, ttl / 10)
        self._lock = threading.Lock()
        self._term: int | None = None
        self._lease = 0
        self._valid_until = 0.0
        self._stop = threading.Event()
        self._won = threading.Event()
        self._listeners: list[Callable[[int | None], None]] = []
        self._thread = threading.Thread(target=self._run, name="election", daemon=True)

    @property
    def key(self) -> str:
        return self._key

    @property
    def term(self) -> int | None:
        """The term while this controller leads; None once it may not (checked now)."""
        with self._lock:
            if self._term is not None and clock() < self._valid_until:
                return self._term
            return None

    def listen(self, callback: Callable[[int | None], None]) -> None:
        """Calls `callback(term)` on winning and `callback(None)` on losing (from the
        election's thread)."""
        self._listeners.append(callback)

    def start(self) -> None:
        self._thread.start()

    def wait_term(self, timeout: float) -> int | None:
        """The term once this controller has won (None if it has not within `timeout`)."""
        self._won.wait(timeout)
        return self.term

    def leader(self) -> str | None:
        """Who leads now, as it named itself (None: nobody)."""
        entry = self._kv.get(self._key)
        return None if entry is None else entry.value.decode()

    def stop(self) -> None:
        """Stops campaigning; a leader resigns (its lease is revoked, the key goes with
        it) so the next leader need not wait out the TTL."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._step_down("resigned")

    # The election's thread.

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._term is None:
                    self._campaign()
                else:
                    self._renew()
            except HangwatchError as exc:
                log.warning("leader election: %s", exc)
            if self._term is not None and clock() >= self._valid_until:
                self._step_down("no keepalive succeeded within the renew deadline")
            self._stop.wait(self.renew_interval if self._term is not None else self.poll_interval)

    def _campaign(self) -> None:
        if self._kv.get(self._key) is not None:
            return
        sent = clock()
        lease = int(self._kv.request("lease/grant", {"TTL": self.ttl, "ID": 0})["ID"])
        txn = Txn()
        txn.created_at(self._key, 0)
        txn.put(self._key, self.identity, lease=lease)
        response = self._kv.txn(txn)
        if not response.get("succeeded"):
            self._revoke(lease)
            return
        term = int(response["header"]["revision"])
        with self._lock:
            self._term, self._lease, self._valid_until = term, lease, sent + self.renew_deadline
        log.info("leader election: %s leads in term %d", self.identity, term)
        self._won.set()
        self._tell(term)

    def _renew(self) -> None:
        sent = clock()
        answer = self._kv.request("lease/keepalive", {"ID": self._lease})
        if int(answer.get("result", {}).get("TTL", -1)) <= 0:
            self._step_down("the lease expired")
            return
        holder = self._kv.get(self._key)
        if holder is None or holder.create_revision != self._term:
            self._step_down("the leader key is gone")
            return
        with self._lock:
            self._valid_until = max(self._valid_until, sent + self.renew_deadline)

    def _step_down(self, why: str) -> None:
        with self._lock:
            term, lease = self._term, self._lease
            self._term, self._lease, self._valid_until = None, 0, 0.0
        if term is None:
            return
        self._won.clear()
        log.warning("leader election: %s no longer leads (term %d): %s", self.identity, term, why)
        self._tell(None)
        self._revoke(lease)

    def _revoke(self, lease: int) -> None:
        try:
            self._kv.request("kv/lease/revoke", {"ID": lease})
        except HangwatchError as exc:
            log.info("leader election: could not revoke lease %x: %s", lease, exc)

    def _tell(self, term: int | None) -> None:
        for listener in self._listeners:
            try:
                listener(term)
            except Exception:
                log.exception("leader election listener failed")
