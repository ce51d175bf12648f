"""The event log in etcd: each id stored once, under a gapless cursor any controller
can resume from.

Cursors come from a counter (`P/event-cursor`) that moves in the same transaction
that writes the events it numbers. A batch of n new events is one transaction that
compares the counter with the value c it was read at, compares each event id key
as absent, and puts the counter at c + n, the events at c+1 .. c+n and their id
keys. Hence:

- No gap within a batch, and none between batches: a transaction commits only if
  the counter still holds the c it allocates after, so successive allocations are
  (c0, c1], (c1, c2], ... whichever controller makes them; a failed attempt
  allocates nothing.
- A cursor is never handed out before every lower one is visible. Allocation and
  the write of the events are one atomic transaction, and allocations commit in
  cursor order (the one after c can only commit once c is there to compare), so at
  any etcd revision the stored cursors are exactly 1 .. counter. Reads are
  linearizable (never served from a lagging member), so a controller that reads
  after another handed out cursor k sees every cursor up to k: a WatchEvents stream
  that resumes on another controller after k misses nothing and repeats nothing.
- Each id once: the id key is compared absent in the transaction that creates it.
  An id seen before takes no cursor (the failed comparison names it, and the batch
  is committed again without it), so duplicates burn no numbers.

A cursor is not an etcd revision: a revision is shared by every key a transaction
writes (a batch would get one number for all its events), changes with heartbeats
and leadership, and cannot be carried over by `migrate-store`; the counter is dense
and moves only with events, as SQLite's cursor does.

The common case costs one round trip per batch: the counter and each host's
highest host_seq are remembered from the last write, and a transaction built from a
stale memory fails and reads back, in its failure branch, what it compared.
A batch larger than etcd's max_txn_ops allows is committed in several transactions,
each atomic: a retry of the call after a failure between them stores the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.store.etcd import values
from controller.store.etcd.base import EtcdBase
from controller.store.etcd.keys import load, unmessage
from controller.store.etcd.kv import ATTEMPTS, Entry, EtcdKV, Fence, Reads, Txn, failure_reads
from controller.store.interface import LOCKUP_KINDS
from controller.store.readable import readable
from hangwatch import pbtime
from hangwatch.errors import StoreUnavailable
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb

# Events read per range request when filtering or paging through the log.
PAGE = 500


class EventLog(EtcdBase):
    def __init__(self, kv: EtcdKV, prefix: str, fence: Fence | None = None) -> None:
        super().__init__(kv, prefix, fence)
        # What the last transaction left (None: not known, assume absent).
        self._cursor_hint: int | None = None
        self._seq_hints: dict[str, int] = {}

    def add_events(self, events: Sequence[pb.Event], now: float) -> list[pb.Event]:
        unique: dict[str, pb.Event] = {}
        for event in events:
            unique.setdefault(event.id, event)
        stored: list[pb.Event] = []
        chunk: list[pb.Event] = []
        hosts: set[str] = set()
        for event in unique.values():
            hosts_after = hosts | {event.host_id}
            # Success branch: each event and its id key, the counter, a seq per host.
            if chunk and 2 * (len(chunk) + 1) + 1 + len(hosts_after) > self._kv.max_txn_ops:
                stored += self._store_chunk(chunk, now)
                chunk, hosts_after = [], {event.host_id}
            chunk.append(event)
            hosts = hosts_after
        if chunk:
            stored += self._store_chunk(chunk, now)
        return stored

    def _store_chunk(self, events: list[pb.Event], now: float) -> list[pb.Event]:
        keys = self._keys
        pending = list(events)
        for _ in range(ATTEMPTS):
            if not pending:
                return []
            cursor = self._cursor_hint or 0
            top: dict[str, int] = {}
            for event in pending:
                top[event.host_id] = max(top.get(event.host_id, 0), event.host_seq)
            txn = Txn()
            txn.value_is(keys.event_cursor, str(cursor) if cursor else None)
            txn.read_on_failure(keys.event_cursor)
            for host in top:
                known = self._seq_hints.get(host)
                txn.value_is(keys.host_seq(host), None if known is None else str(known))
                txn.read_on_failure(keys.host_seq(host))
            stored = []
            for event in pending:
                cursor += 1
                txn.created_at(keys.event_id(event.id), 0)
                txn.read_on_failure(keys.event_id(event.id))
                txn.put(keys.event(cursor), values.event(event, now))
                txn.put(keys.event_id(event.id), str(cursor))
                copy = pb.Event()
                copy.CopyFrom(event)
                copy.cursor = cursor
                copy.received_at.CopyFrom(pbtime.timestamp(now))
                stored.append(copy)
            txn.put(keys.event_cursor, str(cursor))
            for host, seq in top.items():
                if seq > self._seq_hints.get(host, 0):
                    txn.put(keys.host_seq(host), str(seq))
            response = self._kv.txn(txn)
            if response.get("succeeded"):
                self._cursor_hint = cursor
                for host, seq in top.items():
                    self._seq_hints[host] = max(seq, self._seq_hints.get(host, 0))
                return stored
            # Learn what the comparisons were about, and drop ids stored meanwhile.
            found = failure_reads(response)
            counter = found.get(keys.event_cursor)
            self._cursor_hint = int(counter.value) if counter else None
            for host in top:
                stored_seq = found.get(keys.host_seq(host))
                if stored_seq is None:
                    self._seq_hints.pop(host, None)
                else:
                    self._seq_hints[host] = int(stored_seq.value)
            pending = [e for e in pending if keys.event_id(e.id) not in found]
        raise StoreUnavailable(f"storing events conflicted {ATTEMPTS} times in a row")

    def list_events(
        self,
        flt: admin_pb.EventFilter,
        since_cursor: int,
        limit: int,
        newest_first: bool = False,
        hosts: Sequence[str] | None = None,
        before_cursor: int = 0,
    ) -> list[pb.Event]:
        keys = self._keys
        members = None if hosts is None else set(hosts)
        out: list[pb.Event] = []
        low, high = since_cursor + 1, before_cursor
        while len(out) < limit:
            page = self._kv.scan(
                keys.events,
                start=keys.event(low),
                end=keys.event(high) if high else "",
                limit=PAGE,
                descending=newest_first,
            )
            for entry in page:
                event = _event(entry, keys.events)
                if not readable(event, f"event {event.id} (cursor {event.cursor})"):
                    continue
                if _matches(flt, event) and (members is None or event.host_id in members):
                    out.append(event)
                    if len(out) == limit:
                        break
            if len(page) < PAGE:
                break
            last = int(page[-1].key[len(keys.events) :])
            if newest_first:
                high = last
            else:
                low = last + 1
        return out

    def prune_events(self, before: float, keep: int, sinks: Sequence[str], batch: int) -> int:
        """As the SQLite store prunes (see its docstring): a prefix of the log, never the
        newest event, nothing a sink has yet to hand off, no event a dead letter names.
        Leader-only, so two controllers never prune at once."""
        keys = self._keys
        newest = self.last_cursor()
        upto = newest - 1
        cursors, _ = self._kv.get_many([keys.webhook_cursor(s) for s in sinks])
        for entry in cursors.values():
            upto = min(upto, int(entry.value))
        if upto < 1:
            return 0
        dead = {int(load(e.value)["cursor"]) for e in self._kv.scan(keys.dead_letters)}
        end = keys.event(upto + 1)
        page = self._kv.scan(keys.events, start=keys.event(1), end=end, limit=batch)
        doomed: list[str] = []
        for entry in page:
            cursor = int(entry.key[len(keys.events) :])
            value = load(entry.value)
            if cursor > newest - keep and value["received_at"] >= before:
                break
            if cursor not in dead:
                event_id = pb.Event.FromString(unmessage(value["body"])).id
                doomed += [entry.key, keys.event_id(event_id)]
        step = max(2, self._kv.max_txn_ops - self._kv.max_txn_ops % 2)
        for start in range(0, len(doomed), step):
            chunk = doomed[start : start + step]

            def build(reads: Reads, txn: Txn, chunk: list[str] = chunk) -> None:
                for key in chunk:
                    txn.delete(key)

            self._leader_change(build)
        return len(doomed) // 2

    def lockup_signals(
        self, host_id: str, mount: str, before_cursor: int, limit: int
    ) -> list[pb.Event]:
        """Newest first, as the SQLite store answers: the log read backwards from
        `before_cursor` (the etcd store keeps no per-host index), `limit` matches at most."""
        keys = self._keys
        out: list[pb.Event] = []
        end = keys.event(before_cursor) if before_cursor else ""
        while len(out) < limit:
            page = self._kv.scan(keys.events, end=end, limit=PAGE, descending=True)
            for entry in page:
                event = _event(entry, keys.events)
                if event.host_id == host_id and event.mount == mount and event.kind in LOCKUP_KINDS:
                    out.append(event)
                    if len(out) == limit:
                        break
            if len(page) < PAGE:
                break
            end = page[-1].key
        return out

    def last_host_seq(self, host_id: str) -> int:
        entry = self._kv.get(self._keys.host_seq(host_id))
        return int(entry.value) if entry else 0

    def last_cursor(self) -> int:
        entry = self._kv.get(self._keys.event_cursor)
        return int(entry.value) if entry else 0

    def event_cursor(self, event_id: str) -> int | None:
        entry = self._kv.get(self._keys.event_id(event_id))
        return int(entry.value) if entry else None


def _event(entry: Entry, prefix: str) -> pb.Event:
    value = load(entry.value)
    event = pb.Event.FromString(unmessage(value["body"]))
    event.cursor = int(entry.key[len(prefix) :])
    event.received_at.CopyFrom(pbtime.timestamp(value["received_at"]))
    return event


def _matches(flt: admin_pb.EventFilter, event: pb.Event) -> bool:
    return (
        (not flt.host_id or event.host_id == flt.host_id)
        and (not flt.kind or event.kind == flt.kind)
        and (not flt.mount or event.mount == flt.mount)
        and (not flt.min_severity or event.severity >= flt.min_severity)
    )
