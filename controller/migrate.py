"""Moves an installation from its SQLite file to etcd, and checks the copy.

The controller must be stopped while this runs (nothing may write the source); the
target prefix must be empty. After the copy the target is read back through the
Store interface: the same counts of each kind, the same last cursor, and an audit
chain that verifies end to end and ends in the source's last hash.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from controller import audit
from controller.store.etcd.kv import EtcdKV
from controller.store.etcd.load import EtcdLoader
from controller.store.etcd.store import EtcdStore
from controller.store.sqlite.export import SQLiteExport
from hangwatch.errors import HangwatchError


class MigrationMismatch(HangwatchError):
    """The copy read back differs from the source."""


@dataclass(frozen=True)
class Migrated:
    counts: Counter[str]
    last_cursor: int
    audit_rows: int


def migrate(source: SQLiteExport, kv: EtcdKV, prefix: str) -> Migrated:
    counts = EtcdLoader(kv, prefix).load(source)
    return verify(source, EtcdStore(kv, prefix), counts)


def verify(source: SQLiteExport, target: EtcdStore, counts: Counter[str]) -> Migrated:
    problems = []
    expected = {
        "hosts": len(source.list_hosts()),
        "events": source.last_cursor(),
        "groups": len(source.groups()),
        "failovers": sum(source.failover_counts().values()),
        "plans": len(source.list_plans()),
        "advisories": len(source.list_advisories()),
    }
    found = {
        "hosts": len(target.list_hosts()),
        "events": target.last_cursor(),
        "groups": len(target.groups()),
        "failovers": sum(target.failover_counts().values()),
        "plans": len(target.list_plans()),
        "advisories": len(target.list_advisories()),
    }
    for kind, want in expected.items():
        if found[kind] != want or counts[kind] != want:
            problems.append(f"{kind}: {want} in SQLite, {found[kind]} read back from etcd")
    if target.groups() != source.groups():
        problems.append("groups: primaries or epochs differ")
    rows = []
    since = 0
    while page := target.list_audit(since, 1000):
        rows += page
        since = page[-1].seq
    verdict = audit.verify(rows)
    if not verdict.ok:
        problems.append(f"audit chain: {verdict.detail}")
    original = list(source.audit())
    if [r.hash for r in rows[-1:]] != [r.hash for r in original[-1:]] or len(rows) != len(original):
        problems.append(
            f"audit chain: {len(original)} rows in SQLite, {len(rows)} read back, "
            "or it does not end in the same hash"
        )
    if problems:
        raise MigrationMismatch("the copy differs from the source: " + "; ".join(problems))
    return Migrated(counts, found["events"], verdict.entries)
