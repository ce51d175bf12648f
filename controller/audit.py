"""The hash chain of the audit log (pure): each entry's hash covers the one before it.

Editing, deleting or reordering any row breaks every hash from that row on, so
`verify` names the first row that no longer fits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditRow:
    seq: int
    at: float
    actor: str
    role: str
    action: str
    target: str
    detail: str
    allowed: bool
    prev_hash: str
    hash: str


def entry_hash(
    prev_hash: str,
    seq: int,
    at: float,
    actor: str,
    role: str,
    action: str,
    target: str,
    detail: str,
    allowed: bool,
) -> str:
    body = json.dumps(
        [prev_hash, seq, repr(at), actor, role, action, target, detail, allowed],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def chained(
    last: tuple[int, str] | None,
    at: float,
    actor: str,
    role: str,
    action: str,
    target: str,
    detail: str,
    allowed: bool,
) -> AuditRow:
    """The row that follows `last` (its seq and hash; None: the log is empty)."""
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    return AuditRow(
        seq,
        at,
        actor,
        role,
        action,
        target,
        detail,
        allowed,
        prev,
        entry_hash(prev, seq, at, actor, role, action, target, detail, allowed),
    )


def verify(rows: Iterable[AuditRow]) -> tuple[int, int | None, str]:
    """(rows checked, first bad seq or None, what is wrong with it)."""
    prev, expected_seq, count = GENESIS, 1, 0
    for row in rows:
        count += 1
        if row.seq != expected_seq:
            return count, row.seq, f"row {row.seq} follows row {expected_seq - 1}: rows missing"
        if row.prev_hash != prev:
            return count, row.seq, f"row {row.seq} does not link to the row before it"
        if row.hash != entry_hash(
            row.prev_hash,
            row.seq,
            row.at,
            row.actor,
            row.role,
            row.action,
            row.target,
            row.detail,
            row.allowed,
        ):
            return count, row.seq, f"row {row.seq} was changed after it was written"
        prev, expected_seq = row.hash, row.seq + 1
    return count, None, ""
