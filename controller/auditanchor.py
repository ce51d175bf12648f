"""Anchors the audit log's head outside the database (see controller.audit for why).

Every `interval` seconds, when the log grew, the controller checks the rows added
since the last anchor against it and writes a new anchor for the last row: a small
JSON file (seq, hash, time, HMAC) replaced atomically, a log line with the same seq
and hash (so the journal, and whatever ships it elsewhere, keeps an independent copy)
and a metric. It anchors once more on a clean shutdown. The HMAC key is created
(mode 0600) on the first start; a key readable by others is refused.

An anchor is only ever moved along rows that continue it. If the log stops matching
its anchor (rows removed, a row rewritten) anchoring stops with one error line, and
`hangwatchctl audit --verify` keeps failing, until an operator starts afresh by moving
the key and the anchor file aside (docs/operations.md, "The audit log and its
anchors").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.audit import ORIGIN, Anchor, AuditRow, Verdict, anchor_mac, verify, when
from controller.store.dbthread import DbThread
from controller.store.interface import Store
from hangwatch.errors import StartupError

log = logging.getLogger(__name__)

KEY_BYTES = 32
# Rows read from the store at once while checking what was added since the anchor.
PAGE = 10_000


class AnchorProblem(Exception):
    """The anchor file is missing, unreadable or not signed with our key."""


class AuditAnchor(Collector):
    def __init__(self, key_file: Path, anchor_file: Path, interval: float) -> None:
        """Reads the key, creating it on the first start; raises StartupError if unusable."""
        self.anchor_file = anchor_file
        self.interval = interval
        self._key, created = _key(key_file)
        # A new key has nothing to continue: the first checkpoint anchors the head as
        # it is. With an old key, a missing anchor file is a problem to report.
        self._first = created and not anchor_file.exists()
        self._broken = ""
        self.anchored: Anchor | None = None
        self._task: asyncio.Task[None] | None = None

    def read(self) -> Anchor:
        """The anchor on disk; raises AnchorProblem if there is none we can trust."""
        try:
            raw = json.loads(self.anchor_file.read_text(encoding="utf-8"))
            anchor = Anchor(int(raw["seq"]), str(raw["hash"]), float(raw["at"]))
            mac = str(raw["mac"])
        except FileNotFoundError:
            raise AnchorProblem(
                f"anchor file {self.anchor_file} is missing: removed rows cannot be told"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AnchorProblem(f"anchor file {self.anchor_file} is unreadable: {exc}") from None
        if not secrets.compare_digest(mac, anchor_mac(self._key, anchor)):
            raise AnchorProblem(
                f"anchor file {self.anchor_file} is not signed with this controller's key: "
                "it was edited, or the key was replaced"
            )
        return anchor

    def verify(self, rows: list[AuditRow]) -> Verdict:
        """The whole log checked against the anchor on disk."""
        try:
            anchor = self.read()
        except AnchorProblem as exc:
            outcome = verify(rows)
            if not outcome.ok:
                return outcome
            return Verdict(outcome.entries, outcome.head_seq, outcome.head_hash, None, str(exc))
        return verify(rows, anchor)

    def checkpoint(self, store: Store) -> None:
        """Anchors the log's head if it grew along the anchored rows (store thread)."""
        if self._broken:
            return
        try:
            anchor = ORIGIN if self._first else self.read()
            head = self._follow(store, anchor)
        except AnchorProblem as exc:
            self._broken = str(exc)
            log.error("audit log: %s; anchoring stopped (see hangwatchctl audit --verify)", exc)
            return
        if self._first or head.seq != anchor.seq:
            self._write(Anchor(head.seq, head.hash, time.time()))
        else:
            self.anchored = anchor

    def _follow(self, store: Store, anchor: Anchor) -> Anchor:
        """The head reached from `anchor` over the rows after it; AnchorProblem if the
        anchored row is gone or changed, or a row after it does not fit."""
        if anchor.seq:
            found = store.list_audit(anchor.seq - 1, 1)
            if not found or found[0].seq != anchor.seq:
                raise AnchorProblem(
                    f"row {anchor.seq}, anchored on {when(anchor.at)}, is gone: rows were removed"
                )
            row = found[0]
            outcome = verify(found, anchor, Anchor(row.seq - 1, row.prev_hash, 0.0))
            if not outcome.ok:
                raise AnchorProblem(outcome.detail)
        head = anchor
        while True:
            rows = store.list_audit(head.seq, PAGE)
            outcome = verify(rows, start=head)
            if not outcome.ok:
                raise AnchorProblem(outcome.detail)
            head = Anchor(outcome.head_seq, outcome.head_hash, anchor.at)
            if len(rows) < PAGE:
                return head

    def _write(self, anchor: Anchor) -> None:
        body = {**anchor.__dict__, "mac": anchor_mac(self._key, anchor)}
        temporary = self.anchor_file.with_name(self.anchor_file.name + ".new")
        with temporary.open("w", encoding="utf-8") as f:
            json.dump(body, f)
            f.flush()
            os.fsync(f.fileno())
        temporary.replace(self.anchor_file)
        _sync_dir(self.anchor_file.parent)
        self._first = False
        self.anchored = anchor
        log.info("audit log anchored at row %d, hash %s", anchor.seq, anchor.hash)

    def start(self, store: Store, db: DbThread) -> None:
        self._task = asyncio.create_task(self._run(store, db), name="audit-anchor")

    async def stop(self, store: Store, db: DbThread) -> None:
        """Stops the periodic anchoring and anchors the head one last time."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await db.run(self.checkpoint, store)

    async def _run(self, store: Store, db: DbThread) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await db.run(self.checkpoint, store)
            except Exception:
                log.exception("anchoring the audit log failed; trying again")

    def collect(self) -> Iterator[Metric]:
        anchored = self.anchored
        yield GaugeMetricFamily(
            "hangwatch_audit_anchored_seq",
            "The audit log row last anchored outside the database",
            value=anchored.seq if anchored else 0,
        )
        yield GaugeMetricFamily(
            "hangwatch_audit_anchor_broken",
            "1 when the audit log no longer matches its anchor (see hangwatchctl audit --verify)",
            value=int(bool(self._broken)),
        )


def _key(path: Path) -> tuple[bytes, bool]:
    """The HMAC key at `path` and whether it was created just now."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StartupError(f"cannot create the audit key {path}: {exc.strerror}") from None
    else:
        key = secrets.token_hex(KEY_BYTES).encode()
        with os.fdopen(fd, "wb") as f:
            f.write(key + b"\n")
            f.flush()
            os.fsync(f.fileno())
        _sync_dir(path.parent)
        return key, True
    try:
        mode = path.stat().st_mode & 0o777
        key = path.read_bytes().strip()
    except OSError as exc:
        raise StartupError(f"cannot read the audit key {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise StartupError(
            f"audit key {path} is readable by others (mode {mode:04o}): chmod 600 {path}"
        )
    if len(key) < KEY_BYTES:
        raise StartupError(f"audit key {path} is shorter than {KEY_BYTES} bytes")
    return key, False


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
