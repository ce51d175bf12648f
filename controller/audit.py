"""The hash chain of the audit log and its anchors (pure).

Each entry's hash covers the entry and the hash of the one before it. So an entry
edited in place no longer matches its own hash, and one removed or moved breaks the
link of the entry after it: `verify` names the first row that does not fit.

The chain alone cannot show what someone who can write the database does
consistently: removing the newest rows, or editing a row and recomputing every hash
after it, leaves a chain that checks out. An *anchor* closes that gap up to a row:
the seq and hash of the log's last row at some moment, signed (HMAC-SHA256) with a
key the database does not hold and kept outside it (controller.auditanchor). Checked
against an anchor, a log that ends before the anchored row was truncated, and one
whose anchored row has another hash was rewritten. Rows after the last anchor have
only the chain's protection.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
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


@dataclass(frozen=True)
class Anchor:
    """Row `seq` of the audit log had hash `hash` at time `at`."""

    seq: int
    hash: str
    at: float


# Where every chain starts: "row 0" with the genesis hash.
ORIGIN = Anchor(0, GENESIS, 0.0)


@dataclass(frozen=True)
class Verdict:
    entries: int
    # The last row that checked out (0: none) and its hash.
    head_seq: int
    head_hash: str
    # The first row found wrong, and what is wrong, when the log is not intact.
    bad_seq: int | None = None
    detail: str = ""
    anchor: Anchor | None = None

    @property
    def ok(self) -> bool:
        return self.bad_seq is None and not self.detail


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


def anchor_mac(key: bytes, anchor: Anchor) -> str:
    message = f"hangwatch audit anchor\n{anchor.seq}\n{anchor.hash}\n{anchor.at!r}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def verify(
    rows: Iterable[AuditRow], anchor: Anchor | None = None, start: Anchor = ORIGIN
) -> Verdict:
    """Checks `rows`, which continue the chain after `start` (a row already checked, or
    the origin), and that they pass through `anchor` when one is given."""
    prev, expected_seq, count = start.hash, start.seq + 1, 0
    anchored_hash = start.hash if anchor is not None and anchor.seq == start.seq else None

    def broken(seq: int, detail: str) -> Verdict:
        return Verdict(count, expected_seq - 1, prev, seq, detail, anchor)

    for row in rows:
        count += 1
        if row.seq != expected_seq:
            return broken(row.seq, f"row {row.seq} follows row {expected_seq - 1}: rows missing")
        if row.prev_hash != prev:
            return broken(row.seq, f"row {row.seq} does not link to the row before it")
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
            return broken(row.seq, f"row {row.seq} was changed after it was written")
        prev, expected_seq = row.hash, row.seq + 1
        if anchor is not None and row.seq == anchor.seq:
            anchored_hash = row.hash
    head = expected_seq - 1
    if anchor is not None and head < anchor.seq:
        return broken(
            head + 1,
            f"the log ends at row {head}, but row {anchor.seq} was anchored on "
            f"{when(anchor.at)}: rows {head + 1}-{anchor.seq} were removed",
        )
    if anchor is not None and anchored_hash != anchor.hash:
        return broken(
            anchor.seq,
            f"row {anchor.seq} no longer has the hash anchored on {when(anchor.at)}: "
            f"rows up to it were changed and the hashes after them recomputed",
        )
    return Verdict(count, head, prev, anchor=anchor)
