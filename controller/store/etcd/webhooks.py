"""Webhook delivery state in etcd: per-sink cursors, dead letters, open PagerDuty alerts.

The leader's dispatcher writes cursors, dead letters and alert keys (fenced); a
person's RetryDeadLetters, on any controller, only marks letters for resending.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controller.store.etcd import values
from controller.store.etcd.events import EventLog
from controller.store.etcd.keys import dump, load
from controller.store.etcd.kv import Reads, Txn
from controller.store.interface import DeadLetterRow

# Dead letters marked for resending per transaction (each is compared and rewritten).
_REQUEUE_BATCH = 50


class WebhookKeys(EventLog):
    def start_webhook(self, sink: str) -> int:
        """The sink's cursor; a sink seen for the first time starts at the end of the log
        (a new sink is not sent the whole history)."""

        def build(reads: Reads, txn: Txn) -> int:
            key = self._keys.webhook_cursor(sink)
            found = reads.get_many([key, self._keys.event_cursor])
            if key in found:
                return int(found[key].value)
            counter = found.get(self._keys.event_cursor)
            cursor = int(counter.value) if counter else 0
            txn.put(key, str(cursor))
            return cursor

        return self._leader_change(build)

    def set_webhook_cursor(self, sink: str, cursor: int) -> None:
        self._leader_change(lambda reads, txn: self._advance(sink, cursor, reads, txn))

    def _advance(self, sink: str, cursor: int, reads: Reads, txn: Txn) -> None:
        entry = reads.get(self._keys.webhook_cursor(sink))
        if entry is not None and int(entry.value) < cursor:
            txn.put(entry.key, str(cursor))

    def add_dead_letter(
        self, sink: str, event_id: str, attempts: int, error: str, at: float, cursor: int
    ) -> None:
        """Records the failure and moves the sink past the event, in one transaction."""

        def build(reads: Reads, txn: Txn) -> None:
            keys = self._keys
            found = reads.get_many([keys.dead_letter_seq, keys.event_id(event_id)])
            seq = found.get(keys.dead_letter_seq)
            letter_id = (int(seq.value) if seq else 0) + 1
            stored = found.get(keys.event_id(event_id))
            letter = values.dead_letter(
                letter_id,
                sink,
                event_id,
                attempts,
                error,
                at,
                int(stored.value) if stored else cursor,
                None,
            )
            txn.put(keys.dead_letter_seq, str(letter_id))
            txn.put(keys.dead_letter(letter_id), letter)
            self._advance(sink, cursor, reads, txn)

        self._leader_change(build)

    def list_dead_letters(
        self, sink: str = "", after_id: int = 0, limit: int | None = None
    ) -> list[DeadLetterRow]:
        found = sorted(
            (
                _row(d)
                for d in self._letters()
                if d["requeued_at"] is None
                and (not sink or d["sink"] == sink)
                and d["id"] > after_id
            ),
            key=lambda r: r.id,
        )
        return found if limit is None else found[:limit]

    def dead_letter_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for letter in self._letters():
            counts[letter["sink"]] = counts.get(letter["sink"], 0) + 1
        return counts

    def requeue_dead_letters(self, sink: str, ids: Sequence[int], at: float) -> int:
        """Marks dead letters (of `sink`, or all; the `ids`, or all) for resending."""
        chosen = [
            d["id"]
            for d in self._letters()
            if d["requeued_at"] is None
            and (not sink or d["sink"] == sink)
            and (not ids or d["id"] in ids)
        ]
        marked = 0
        for start in range(0, len(chosen), _REQUEUE_BATCH):
            batch = chosen[start : start + _REQUEUE_BATCH]

            def build(reads: Reads, txn: Txn, batch: list[int] = batch) -> int:
                found = reads.get_many(self._keys.dead_letter(i) for i in batch)
                count = 0
                for entry in found.values():
                    letter = load(entry.value)
                    if letter["requeued_at"] is None:
                        txn.put(entry.key, dump({**letter, "requeued_at": at}))
                        count += 1
                return count

            marked += self._change(build)
        return marked

    def requeued_dead_letters(self, sink: str) -> list[DeadLetterRow]:
        return [
            _row(d) for d in self._letters() if d["requeued_at"] is not None and d["sink"] == sink
        ]

    def settle_dead_letter(
        self, letter_id: int, delivered: bool, attempts: int, error: str, at: float
    ) -> None:
        """A resent dead letter: gone once delivered, else dead again with its new failure."""

        def build(reads: Reads, txn: Txn) -> None:
            entry = reads.get(self._keys.dead_letter(letter_id))
            if entry is None:
                return
            if delivered:
                txn.delete(entry.key)
                return
            letter = load(entry.value)
            letter.update(
                attempts=letter["attempts"] + attempts,
                last_error=error,
                failed_at=at,
                requeued_at=None,
            )
            txn.put(entry.key, dump(letter))

        self._leader_change(build)

    def alert_key(self, sink: str, host_id: str, mount: str) -> str | None:
        entry = self._kv.get(self._keys.alert(sink, host_id, mount))
        return None if entry is None else entry.value.decode()

    def set_alert_key(self, sink: str, host_id: str, mount: str, key: str | None) -> None:
        """Remembers the dedup_key of a triggered alert; None forgets it (resolved)."""

        def build(reads: Reads, txn: Txn) -> None:
            if key is None:
                txn.delete(self._keys.alert(sink, host_id, mount))
            else:
                txn.put(self._keys.alert(sink, host_id, mount), key)

        self._leader_change(build)

    def remote_id(self, sink: str, key: str) -> str | None:
        entry = self._kv.get(self._keys.remote_id(sink, key))
        return None if entry is None else entry.value.decode()

    def set_remote_id(self, sink: str, key: str, remote_id: str) -> None:
        def build(reads: Reads, txn: Txn) -> None:
            txn.put(self._keys.remote_id(sink, key), remote_id)

        self._leader_change(build)

    def _letters(self) -> list[dict[str, Any]]:
        return [load(e.value) for e in self._kv.scan(self._keys.dead_letters)]


def _row(letter: dict[str, Any]) -> DeadLetterRow:
    return DeadLetterRow(
        letter["id"],
        letter["sink"],
        letter["event_id"],
        letter["attempts"],
        letter["last_error"],
        letter["failed_at"],
        letter["cursor"],
    )
