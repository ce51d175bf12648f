"""Webhook delivery state: per-sink cursors, dead letters, open PagerDuty alerts."""

from __future__ import annotations

from collections.abc import Sequence

from controller.store.interface import DeadLetterRow
from controller.store.sqlite.connection import SQLiteBase

_DEAD = (
    "SELECT d.id, d.sink, d.event_id, d.attempts, d.last_error, d.failed_at, e.cursor "
    "FROM webhook_dead_letters d JOIN events e ON e.id = d.event_id"
)


class WebhookTables(SQLiteBase):
    def start_webhook(self, sink: str) -> int:
        """The sink's cursor; a sink seen for the first time starts at the end of the log
        (a new sink is not sent the whole history)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO webhook_deliveries (sink, cursor) "
                "SELECT ?, coalesce(max(cursor), 0) FROM events",
                (sink,),
            )
            row = db.execute(
                "SELECT cursor FROM webhook_deliveries WHERE sink = ?", (sink,)
            ).fetchone()
        return int(row[0])

    def set_webhook_cursor(self, sink: str, cursor: int) -> None:
        self._db.execute(
            "UPDATE webhook_deliveries SET cursor = max(cursor, ?) WHERE sink = ?", (cursor, sink)
        )

    def add_dead_letter(
        self, sink: str, event_id: str, attempts: int, error: str, at: float, cursor: int
    ) -> None:
        """Records the failure and moves the sink past the event, in one transaction."""
        with self._tx():
            self._db.execute(
                "INSERT INTO webhook_dead_letters (sink, event_id, attempts, last_error, "
                "failed_at) VALUES (?, ?, ?, ?, ?)",
                (sink, event_id, attempts, error, at),
            )
            self.set_webhook_cursor(sink, cursor)

    def list_dead_letters(
        self, sink: str = "", after_id: int = 0, limit: int | None = None
    ) -> list[DeadLetterRow]:
        where = " WHERE d.requeued_at IS NULL AND d.id > ?" + (" AND d.sink = ?" if sink else "")
        args = (after_id, sink) if sink else (after_id,)
        rows = self._db.execute(
            _DEAD + where + " ORDER BY d.id LIMIT ?", (*args, -1 if limit is None else limit)
        )
        return [DeadLetterRow(*r) for r in rows]

    def dead_letter_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT sink, count(*) FROM webhook_dead_letters GROUP BY sink")
        return {str(sink): int(n) for sink, n in rows}

    def requeue_dead_letters(self, sink: str, ids: Sequence[int], at: float) -> int:
        """Marks dead letters (of `sink`, or all; the `ids`, or all) for resending."""
        where = ["requeued_at IS NULL"]
        args: list[object] = [at]
        if sink:
            where.append("sink = ?")
            args.append(sink)
        if ids:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        cur = self._db.execute(
            f"UPDATE webhook_dead_letters SET requeued_at = ? WHERE {' AND '.join(where)}", args
        )
        return cur.rowcount

    def requeued_dead_letters(self, sink: str) -> list[DeadLetterRow]:
        rows = self._db.execute(
            _DEAD + " WHERE d.sink = ? AND d.requeued_at IS NOT NULL ORDER BY d.id", (sink,)
        )
        return [DeadLetterRow(*r) for r in rows]

    def settle_dead_letter(
        self, letter_id: int, delivered: bool, attempts: int, error: str, at: float
    ) -> None:
        """A resent dead letter: gone once delivered, else dead again with its new failure."""
        if delivered:
            self._db.execute("DELETE FROM webhook_dead_letters WHERE id = ?", (letter_id,))
        else:
            self._db.execute(
                "UPDATE webhook_dead_letters SET attempts = attempts + ?, last_error = ?, "
                "failed_at = ?, requeued_at = NULL WHERE id = ?",
                (attempts, error, at, letter_id),
            )

    def alert_key(self, sink: str, host_id: str, mount: str) -> str | None:
        row = self._db.execute(
            "SELECT dedup_key FROM webhook_alerts WHERE sink = ? AND host_id = ? AND mount = ?",
            (sink, host_id, mount),
        ).fetchone()
        return str(row[0]) if row else None

    def set_alert_key(self, sink: str, host_id: str, mount: str, key: str | None) -> None:
        """Remembers the dedup_key of a triggered alert; None forgets it (resolved)."""
        if key is None:
            self._db.execute(
                "DELETE FROM webhook_alerts WHERE sink = ? AND host_id = ? AND mount = ?",
                (sink, host_id, mount),
            )
        else:
            self._db.execute(
                "INSERT OR REPLACE INTO webhook_alerts (sink, host_id, mount, dedup_key) "
                "VALUES (?, ?, ?, ?)",
                (sink, host_id, mount, key),
            )

    def remote_id(self, sink: str, key: str) -> str | None:
        row = self._db.execute(
            "SELECT remote_id FROM webhook_remote_ids WHERE sink = ? AND key = ?", (sink, key)
        ).fetchone()
        return str(row[0]) if row else None

    def set_remote_id(self, sink: str, key: str, remote_id: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO webhook_remote_ids (sink, key, remote_id) VALUES (?, ?, ?)",
            (sink, key, remote_id),
        )
