"""Groups, failovers, agent commands and fence outcomes in etcd.

A failover step is one transaction: it compares the failover record's and the
group's mod_revision as read (a step written meanwhile makes it StaleFailover; an
epoch taken meanwhile too), the group's open-failover key (GroupBusy), the audit
chain head, and the leader key's create_revision against this controller's term.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.failover.machine import Failover
from controller.store import records
from controller.store.commitrules import check_guard, check_open, check_step, epoch_taken
from controller.store.etcd import values
from controller.store.etcd.audit import AuditLog
from controller.store.etcd.keys import dump, load, message, unmessage
from controller.store.etcd.kv import Entry, Reads, Txn
from controller.store.interface import POLICY_FAILOVERS, FailoverCommit, GroupRow
from hangwatch.v1 import types_pb2 as pb


class FailoverKeys(AuditLog):
    def seed_groups(self, groups: Sequence[tuple[str, str]]) -> None:
        """Creates the groups first declared in the config (name, initial primary)."""

        def build(reads: Reads, txn: Txn) -> None:
            found = reads.get_many(self._keys.group(name) for name, _ in groups)
            for name, primary in dict(groups).items():
                if self._keys.group(name) not in found:
                    txn.put(self._keys.group(name), values.group(name, primary, 0, None, 0))

        if groups:
            self._change(build)

    def groups(self) -> dict[str, GroupRow]:
        rows = (load(e.value) for e in self._kv.scan(self._keys.groups))
        return {
            g["name"]: GroupRow(g["name"], g["primary"], g["epoch"], g["auto_blocked_until"])
            for g in rows
        }

    def set_auto_blocked_until(self, group: str, until: float | None) -> None:
        def build(reads: Reads, txn: Txn) -> None:
            entry = reads.get(self._keys.group(group))
            if entry is not None:
                row = {**load(entry.value), "auto_blocked_until": until, "term": self.term}
                txn.put(entry.key, dump(row))

        self._leader_change(build)

    def raise_group_epoch(
        self, group: str, epoch: int, audit: tuple[str, str, str, str], now: float
    ) -> bool:
        """Raises the group's epoch to `epoch` (only ever up), audited in the same write."""

        def build(reads: Reads, txn: Txn) -> bool:
            entry = reads.get(self._keys.group(group))
            if entry is None or load(entry.value)["epoch"] >= epoch:
                return False
            txn.put(entry.key, dump({**load(entry.value), "epoch": epoch, "term": self.term}))
            actor, role, action, detail = audit
            self._append(reads, txn, now, actor, role, action, group, detail)
            return True

        return self._leader_change(build)

    def commit_failover(self, change: FailoverCommit, now: float) -> None:
        self._leader_change(lambda reads, txn: self._commit(change, now, reads, txn))

    def _commit(self, change: FailoverCommit, now: float, reads: Reads, txn: Txn) -> None:
        keys, f = self._keys, change.failover
        group_names = {
            pair[0]
            for pair in (change.epoch, change.primary, change.auto_blocked_until)
            if pair is not None
        }
        wanted = [keys.failover(f.id), keys.open_failover(f.group), keys.audit_head]
        wanted += [keys.group(g) for g in group_names]
        wanted += [keys.command(c.id) for _, c in change.commands]
        if change.needs_clear is not None:
            wanted.append(keys.host(change.needs_clear[0]))
        found = reads.get_many(wanted)
        open_entry = found.get(keys.open_failover(f.group))
        open_id = open_entry.value.decode() if open_entry else None
        check_open(f, open_id)
        before = found.get(keys.failover(f.id))
        check_step(f, None if before is None else _failover(before))
        check_guard(change, lambda: _newest(reads.scan(keys.failovers), POLICY_FAILOVERS))
        txn.put(keys.failover(f.id), values.record(f, now, self.term))
        if f.state.active and open_id is None:
            txn.put(keys.open_failover(f.group), f.id)
        elif not f.state.active and open_id == f.id:
            txn.delete(keys.open_failover(f.group))
        for name in sorted(group_names):
            self._change_group(change, found.get(keys.group(name)), name, txn)
        if change.needs_clear is not None:
            host, reason = change.needs_clear
            if keys.host(host) in found:
                if reason:
                    txn.put(keys.needs_clear(host), reason)
                else:
                    txn.delete(keys.needs_clear(host))
        for host, command in change.commands:
            if keys.command(command.id) not in found:
                txn.put(keys.command(command.id), values.command(host, now, command))
                txn.put(keys.pending_command(host, command.id), "")
        if change.audit is not None:
            actor, role, action, detail = change.audit
            self._append(reads, txn, now, actor, role, action, f.group, detail)

    def _change_group(
        self, change: FailoverCommit, entry: Entry | None, name: str, txn: Txn
    ) -> None:
        epoch = change.epoch if change.epoch is not None and change.epoch[0] == name else None
        if epoch is not None and (entry is None or load(entry.value)["epoch"] != epoch[1] - 1):
            raise epoch_taken(*epoch)
        if entry is None:
            return
        group = load(entry.value)
        if epoch is not None:
            group["epoch"] = epoch[1]
        if change.primary is not None and change.primary[0] == name:
            group["primary"] = change.primary[1]
        if change.auto_blocked_until is not None and change.auto_blocked_until[0] == name:
            group["auto_blocked_until"] = change.auto_blocked_until[1]
        group["term"] = self.term
        txn.put(entry.key, dump(group))

    def get_failover(self, failover_id: str) -> Failover | None:
        entry = self._kv.get(self._keys.failover(failover_id))
        return None if entry is None else _failover(entry)

    def list_failovers(
        self,
        group: str = "",
        active_only: bool = False,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[Failover]:
        found = [_failover(e) for e in self._kv.scan(self._keys.failovers)]
        found = [
            f
            for f in found
            if (not group or f.group == group)
            and (not active_only or f.state.active)
            and (before is None or (f.created_at, f.id) < before)
        ]
        found.sort(key=lambda f: (f.created_at, f.id), reverse=True)
        return found[:limit]

    def failover_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for entry in self._kv.scan(self._keys.failovers):
            record = load(entry.value)["record"]
            key = (record["group"], record["state"])
            counts[key] = counts.get(key, 0) + 1
        return counts

    # Commands.

    def pending_commands(self, host_id: str) -> list[pb.Command]:
        """Unanswered commands of failovers still in progress: a command of a failover that
        failed or was cancelled must not run when its host comes back."""
        keys = self._keys
        prefix = keys.pending_of(host_id)
        ids = [e.key[len(prefix) :] for e in self._kv.scan(prefix)]
        found, _ = self._kv.get_many(keys.commands + i for i in ids)
        rows = sorted((load(e.value) for e in found.values()), key=lambda c: c["created_at"])
        commands = [pb.Command.FromString(unmessage(c["body"])) for c in rows]
        failovers, _ = self._kv.get_many({keys.failover(c.failover_id) for c in commands})
        out = []
        for command in commands:
            f = failovers.get(keys.failover(command.failover_id))
            if f is None or _failover(f).state.active:
                out.append(command)
        return out

    def record_command_result(self, result: pb.CommandResult, now: float) -> bool:
        """Stores the first result reported for a command; False for an unknown command."""

        def build(reads: Reads, txn: Txn) -> bool:
            entry = reads.get(self._keys.command(result.command_id))
            if entry is None:
                return False
            command = load(entry.value)
            if command["host_id"] != result.host_id:
                return False
            if command["result"] is None:
                command.update(result=message(result), reported_at=now)
                txn.put(entry.key, dump(command))
                txn.delete(self._keys.pending_command(result.host_id, result.command_id))
            return True

        return self._change(build)

    def command_results(self, ids: Sequence[str]) -> dict[str, pb.CommandResult]:
        found, _ = self._kv.get_many(self._keys.command(i) for i in ids)
        out = {}
        for command_id in ids:
            entry = found.get(self._keys.command(command_id))
            if entry is not None and load(entry.value)["result"] is not None:
                out[command_id] = pb.CommandResult.FromString(
                    unmessage(load(entry.value)["result"])
                )
        return out

    # Fencing.

    def record_fence_result(self, failover_id: str, ok: bool, detail: str, now: float) -> None:
        def build(reads: Reads, txn: Txn) -> None:
            key = self._keys.fence_result(failover_id)
            if reads.get(key) is None:
                txn.put(key, values.fence_result(ok, detail, now))

        self._leader_change(build)

    def fence_result(self, failover_id: str) -> tuple[bool, str] | None:
        entry = self._kv.get(self._keys.fence_result(failover_id))
        if entry is None:
            return None
        value = load(entry.value)
        return bool(value["ok"]), str(value["detail"])


def _failover(entry: Entry) -> Failover:
    return records.from_json(Failover, load(entry.value)["record"])


def _newest(entries: list[Entry], limit: int) -> list[Failover]:
    found = sorted((_failover(e) for e in entries), key=lambda f: (f.created_at, f.id))
    return found[::-1][:limit]
