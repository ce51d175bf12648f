"""The spool worker process: owns the SQLite spool, answers one JSON line per request.

Kept apart from the agent so that a frozen state dir stalls this process, never
the agent (see agent/workers/spool.py). Standard library only: the worker stays small.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    host_seq  INTEGER PRIMARY KEY,
    id        TEXT NOT NULL UNIQUE,
    droppable INTEGER NOT NULL,
    body      BLOB NOT NULL
)
"""


class SpoolDb:
    """The spool table: events by host_seq, each with its droppable flag."""

    def __init__(self, path: Path, limit: int) -> None:
        self.limit = limit
        self.dropped = 0
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def append(self, rows: Sequence[tuple[int, str, int, bytes]]) -> None:
        """Stores (host_seq, id, droppable, body) rows, then trims to the limit."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR IGNORE INTO spool (host_seq, id, droppable, body) VALUES (?,?,?,?)", rows
            )
            excess = self._db.execute("SELECT count(*) FROM spool").fetchone()[0] - self.limit
            if excess > 0:
                # Oldest droppable events go first; lockup and kernel events stay.
                cur = self._db.execute(
                    "DELETE FROM spool WHERE host_seq IN (SELECT host_seq FROM spool "
                    "WHERE droppable = 1 ORDER BY host_seq LIMIT ?)",
                    (excess,),
                )
                self.dropped += cur.rowcount
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def remove(self, ids: Sequence[str]) -> None:
        # One transaction (one fsync) per acknowledged batch, not one per id.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in ids])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def pending(self) -> list[bytes]:
        """Serialized events in host_seq order."""
        return [body for (body,) in self._db.execute("SELECT body FROM spool ORDER BY host_seq")]

    def depth(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM spool").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def handle(db: SpoolDb, request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "load":
        reply: dict[str, Any] = {"events": [base64.b64encode(b).decode() for b in db.pending()]}
    elif op == "append":
        db.append(
            [
                (int(seq), str(i), int(d), base64.b64decode(body))
                for seq, i, d, body in request["events"]
            ]
        )
        reply = {}
    elif op == "remove":
        db.remove([str(i) for i in request["ids"]])
        reply = {}
    else:
        return {"error": f"unknown spool request {op!r}"}
    reply.update(depth=db.depth(), dropped=db.dropped)
    return reply


def main(argv: Sequence[str]) -> None:
    path, limit = Path(argv[0]), int(argv[1])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = SpoolDb(path, limit)
    except Exception as exc:
        print(json.dumps({"error": f"cannot open spool {path}: {exc}"}), flush=True)
        return
    for line in sys.stdin:
        try:
            reply = handle(db, json.loads(line))
        except Exception as exc:
            reply = {"error": f"spool request failed: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    db.close()
