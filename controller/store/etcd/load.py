"""Fills an empty etcd prefix from a migration source, in the layout of .keys.

Every event keeps its cursor and every audit row its seq and hashes; the counters
(event cursor, audit head, dead letter ids), the per-host highest host_seq, the
open-failover and pending-command indexes are set from what was copied. Values carry
term 0: nobody led when they were written. Writes go in transactions of at most
max_txn_ops puts, the first of which creates a marker key only if the prefix is still
empty, so two migrations cannot interleave into one prefix.
"""

from __future__ import annotations

from collections import Counter

from controller.store.etcd import values
from controller.store.etcd.keys import Keys, dump
from controller.store.etcd.kv import EtcdKV, Txn
from controller.store.transfer import Source
from hangwatch.errors import HangwatchError


class PrefixNotEmpty(HangwatchError):
    """The target already holds state: a migration never merges into it."""


class EtcdLoader:
    def __init__(self, kv: EtcdKV, prefix: str) -> None:
        self._kv = kv
        self._keys = Keys(prefix)
        self._txn = Txn()
        self.counts: Counter[str] = Counter()

    def check_empty(self) -> None:
        held = self._kv.count(self._keys.prefix)
        if held:
            raise PrefixNotEmpty(
                f"etcd prefix {self._keys.prefix} already holds {held} keys: "
                "a migration copies into an empty prefix only"
            )

    def load(self, source: Source) -> Counter[str]:
        """Copies everything `source` holds; the counts of what was copied, by kind."""
        self.check_empty()
        keys = self._keys
        # The first transaction claims the prefix: it fails if anything is there now.
        claim = Txn()
        claim.created_at(keys.prefix + "migration", 0)
        claim.put(keys.prefix + "migration", dump({"state": "copying"}))
        if not self._kv.txn(claim).get("succeeded"):
            raise PrefixNotEmpty(f"etcd prefix {keys.prefix}: another migration is copying")
        for host in source.hosts():
            self._put(
                "hosts", keys.host(host.host_id), values.host(host.registration, host.registered_at)
            )
            self._put(None, keys.boot(host.host_id), host.boot_id)
            if host.last_heartbeat is not None and host.last_heartbeat_at is not None:
                self._put(
                    None,
                    keys.heartbeat(host.host_id),
                    values.heartbeat(host.last_heartbeat, host.last_heartbeat_at),
                )
            if host.needs_clear:
                self._put(None, keys.needs_clear(host.host_id), host.needs_clear)
        last_cursor, seqs = 0, dict[str, int]()
        for event in source.events():
            received = event.received_at.seconds + event.received_at.nanos / 1e9
            self._put("events", keys.event(event.cursor), values.event(event, received))
            self._put(None, keys.event_id(event.id), str(event.cursor))
            seqs[event.host_id] = max(seqs.get(event.host_id, 0), event.host_seq)
            last_cursor = event.cursor
        if last_cursor:
            self._put(None, keys.event_cursor, str(last_cursor))
        for host_id, seq in seqs.items():
            self._put(None, keys.host_seq(host_id), str(seq))
        for g in source.group_rows():
            self._put(
                "groups",
                keys.group(g.name),
                values.group(g.name, g.primary, g.epoch, g.auto_blocked_until, 0),
            )
        for f, updated_at in source.failovers():
            self._put("failovers", keys.failover(f.id), values.record(f, updated_at, 0))
            if f.state.active:
                self._put(None, keys.open_failover(f.group), f.id)
        for c in source.commands():
            value = values.command(c.host_id, c.created_at, c.command, c.result, c.reported_at)
            self._put("commands", keys.command(c.command.id), value)
            if c.result is None:
                self._put(None, keys.pending_command(c.host_id, c.command.id), "")
        for r in source.fence_results():
            self._put(
                "fence_results",
                keys.fence_result(r.failover_id),
                values.fence_result(r.ok, r.detail, r.at),
            )
        head = None
        for row in source.audit():
            self._put("audit", keys.audit_row(row.seq), values.row(row))
            head = row
        if head is not None:
            self._put(None, keys.audit_head, dump({"seq": head.seq, "hash": head.hash}))
        for w in source.maintenance():
            self._put("maintenance", keys.maintenance_of(w.scope, w.target), values.row(w))
        for name, setting in source.settings():
            self._put("settings", keys.setting(name), setting)
        for i in source.incidents():
            self._put("incidents", keys.incident(i.id), values.row(i))
        for sink, cursor in source.webhook_cursors():
            self._put("webhook_cursors", keys.webhook_cursor(sink), str(cursor))
        for d, requeued_at in source.dead_letters():
            letter = values.dead_letter(
                d.id,
                d.sink,
                d.event_id,
                d.attempts,
                d.last_error,
                d.failed_at,
                d.cursor,
                requeued_at,
            )
            self._put("dead_letters", keys.dead_letter(d.id), letter)
        if source.last_dead_letter_id():
            self._put(None, keys.dead_letter_seq, str(source.last_dead_letter_id()))
        for a in source.alerts():
            self._put("alerts", keys.alert(a.sink, a.host_id, a.mount), a.dedup_key)
        for adv in source.advisories():
            self._put("advisories", keys.advisory(adv.id), values.row(adv))
        for plan, updated_at in source.plans():
            self._put("plans", keys.plan(plan.name), values.record(plan, updated_at, 0))
        self._flush()
        self._kv.delete(keys.prefix + "migration")
        return self.counts

    def _put(self, kind: str | None, key: str, value: bytes | str) -> None:
        if kind is not None:
            self.counts[kind] += 1
        self._txn.put(key, value)
        if len(self._txn.success) >= self._kv.max_txn_ops:
            self._flush()

    def _flush(self) -> None:
        if self._txn.success:
            self._kv.txn(self._txn)
            self._txn = Txn()
