"""Groups (primary and epoch), failovers, agent commands and fence outcomes."""

from __future__ import annotations

from collections.abc import Sequence

from controller.failover.machine import Failover
from controller.failover.model import FailoverState
from controller.store import records
from controller.store.commitrules import check_guard, check_open, check_step, epoch_taken
from controller.store.interface import POLICY_FAILOVERS, FailoverCommit, GroupRow
from controller.store.sqlite.audit import AuditTable
from hangwatch.v1 import types_pb2 as pb


class FailoverTables(AuditTable):
    def seed_groups(self, groups: Sequence[tuple[str, str]]) -> None:
        """Creates the rows of groups first declared in the config (name, initial primary)."""
        with self._tx():
            self._db.executemany(
                "INSERT OR IGNORE INTO groups (name, primary_host, epoch) VALUES (?, ?, 0)", groups
            )

    def groups(self) -> dict[str, GroupRow]:
        rows = self._db.execute("SELECT name, primary_host, epoch, auto_blocked_until FROM groups")
        return {r[0]: GroupRow(*r) for r in rows}

    def set_auto_blocked_until(self, group: str, until: float | None) -> None:
        self._db.execute("UPDATE groups SET auto_blocked_until = ? WHERE name = ?", (until, group))

    def raise_group_epoch(
        self, group: str, epoch: int, audit: tuple[str, str, str, str], now: float
    ) -> bool:
        with self._tx() as db:
            raised = db.execute(
                "UPDATE groups SET epoch = ? WHERE name = ? AND epoch < ?", (epoch, group, epoch)
            )
            if raised.rowcount != 1:
                return False
            actor, role, action, detail = audit
            self.append_audit(now, actor, role, action, group, detail)
            return True

    def commit_failover(self, change: FailoverCommit, now: float) -> None:
        f = change.failover
        with self._tx() as db:
            if f.state is FailoverState.PROPOSED:
                busy = db.execute(
                    "SELECT id FROM failovers WHERE group_name = ? AND id != ? AND state NOT IN "
                    "('COMPLETED', 'REJECTED', 'CANCELLED', 'FAILED')",
                    (f.group, f.id),
                ).fetchone()
                check_open(f, None if busy is None else busy[0])
            stored = db.execute("SELECT record FROM failovers WHERE id = ?", (f.id,)).fetchone()
            check_step(f, None if stored is None else records.loads(Failover, stored[0]))
            check_guard(change, lambda: self.list_failovers(limit=POLICY_FAILOVERS))
            db.execute(
                """INSERT INTO failovers (id, group_name, state, created_at, updated_at, auto,
                     record) VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (id) DO UPDATE SET state = excluded.state,
                     updated_at = excluded.updated_at, auto = excluded.auto,
                     record = excluded.record""",
                (f.id, f.group, f.state.value, f.created_at, now, int(f.auto), records.dumps(f)),
            )
            if change.epoch is not None:
                # Compare and set: an epoch is taken once, by one failover.
                taken = db.execute(
                    "UPDATE groups SET epoch = ? WHERE name = ? AND epoch = ?",
                    (change.epoch[1], change.epoch[0], change.epoch[1] - 1),
                )
                if taken.rowcount != 1:
                    raise epoch_taken(*change.epoch)
            if change.primary is not None:
                db.execute(
                    "UPDATE groups SET primary_host = ? WHERE name = ?",
                    (change.primary[1], change.primary[0]),
                )
            if change.auto_blocked_until is not None:
                db.execute(
                    "UPDATE groups SET auto_blocked_until = ? WHERE name = ?",
                    (change.auto_blocked_until[1], change.auto_blocked_until[0]),
                )
            if change.needs_clear is not None:
                db.execute(
                    "UPDATE hosts SET needs_clear = ? WHERE host_id = ?",
                    (change.needs_clear[1], change.needs_clear[0]),
                )
            db.executemany(
                "INSERT OR IGNORE INTO commands (id, host_id, created_at, body) "
                "VALUES (?, ?, ?, ?)",
                [(c.id, host, now, c.SerializeToString()) for host, c in change.commands],
            )
            if change.audit is not None:
                actor, role, action, detail = change.audit
                self.append_audit(now, actor, role, action, f.group, detail)

    def get_failover(self, failover_id: str) -> Failover | None:
        row = self._db.execute(
            "SELECT record FROM failovers WHERE id = ?", (failover_id,)
        ).fetchone()
        return records.loads(Failover, row[0]) if row else None

    def list_failovers(
        self,
        group: str = "",
        active_only: bool = False,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[Failover]:
        where: list[str] = []
        args: list[object] = []
        if group:
            where.append("group_name = ?")
            args.append(group)
        if active_only:
            where.append("state NOT IN ('COMPLETED', 'REJECTED', 'CANCELLED', 'FAILED')")
        if before is not None:
            where.append("(created_at, id) < (?, ?)")
            args.extend(before)
        sql = "SELECT record FROM failovers"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        return [records.loads(Failover, r[0]) for r in self._db.execute(sql, (*args, limit))]

    def failover_counts(self) -> dict[tuple[str, str], int]:
        rows = self._db.execute(
            "SELECT group_name, state, count(*) FROM failovers GROUP BY group_name, state"
        )
        return {(str(group), str(state)): int(n) for group, state, n in rows}

    # Commands.

    def pending_commands(self, host_id: str) -> list[pb.Command]:
        """Unanswered commands of failovers still in progress: a command of a failover that
        failed or was cancelled must not run when its host comes back."""
        rows = self._db.execute(
            "SELECT body FROM commands WHERE host_id = ? AND result IS NULL ORDER BY created_at",
            (host_id,),
        )
        out = []
        for (body,) in rows:
            command = pb.Command.FromString(body)
            state = self._db.execute(
                "SELECT state FROM failovers WHERE id = ?", (command.failover_id,)
            ).fetchone()
            if state is None or FailoverState(state[0]).active:
                out.append(command)
        return out

    def record_command_result(self, result: pb.CommandResult, now: float) -> bool:
        """Stores the first result reported for a command; False for an unknown command."""
        cur = self._db.execute(
            "UPDATE commands SET result = coalesce(result, ?), reported_at = coalesce("
            "reported_at, ?) WHERE id = ? AND host_id = ?",
            (result.SerializeToString(), now, result.command_id, result.host_id),
        )
        return cur.rowcount == 1

    def command_results(self, ids: Sequence[str]) -> dict[str, pb.CommandResult]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(
            f"SELECT id, result FROM commands WHERE id IN ({marks}) AND result IS NOT NULL",
            tuple(ids),
        )
        return {r[0]: pb.CommandResult.FromString(r[1]) for r in rows}

    # Fencing.

    def record_fence_result(self, failover_id: str, ok: bool, detail: str, now: float) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO fence_results (failover_id, ok, detail, at) VALUES (?, ?, ?, ?)",
            (failover_id, int(ok), detail, now),
        )

    def fence_result(self, failover_id: str) -> tuple[bool, str] | None:
        row = self._db.execute(
            "SELECT ok, detail FROM fence_results WHERE failover_id = ?", (failover_id,)
        ).fetchone()
        return (bool(row[0]), str(row[1])) if row else None
