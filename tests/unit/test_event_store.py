"""Events in the store: filters served from an index, groups, retention."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from storekit import Stores

from controller.store.interface import Store
from controller.store.sqlite.store import SQLiteStore, events_query
from hangwatch import pbtime
from hangwatch.ids import new_ulid
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb

NOW = 1_700_000_000.0
DAY = 86400.0


@pytest.fixture
def store(tmp_path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "controller.db")
    yield s
    s.close()


@pytest.fixture
def any_store(stores: Stores) -> Store:
    """The store of each backend in turn (the protocol's semantics, not SQLite's plan)."""
    return stores.open()


def add(store: Store, hosts: list[str], received_at: float = NOW) -> list[pb.Event]:
    """One event per entry of `hosts`, received at `received_at`."""
    events = [
        pb.Event(
            id=new_ulid(),
            host_id=host,
            host_seq=time.time_ns(),
            mount="/srv/mail",
            kind="SYNTHETIC_TEST",
            severity=pb.SEVERITY_INFO,
            occurred_at=pbtime.timestamp(received_at),
        )
        for host in hosts
    ]
    return store.add_events(events, received_at)


def plan(store: SQLiteStore, flt: admin_pb.EventFilter, newest_first: bool) -> str:
    sql, args = events_query(flt, 0, 50, newest_first)
    return " | ".join(row[3] for row in store._db.execute(f"EXPLAIN QUERY PLAN {sql}", args))


@pytest.mark.parametrize("newest_first", [False, True])
@pytest.mark.parametrize(
    "flt",
    [
        admin_pb.EventFilter(host_id="mail-1"),
        admin_pb.EventFilter(host_id="mail-1", min_severity=pb.SEVERITY_ERROR),
        admin_pb.EventFilter(host_id="mail-1", mount="/srv/mail"),
    ],
    ids=["host", "host+severity", "host+mount"],
)
def test_a_host_filter_reads_an_index_in_cursor_order(store, flt, newest_first):
    """A filtered query walked the log from its cursor, testing every row (or sorted the
    host's events); now it reads events_host_cursor in order, no sort. Fails before the
    fix (no such index)."""
    add(store, ["mail-1", "mail-2"] * 50)
    store._db.execute("ANALYZE")
    found = plan(store, flt, newest_first)
    assert "USING INDEX events_host_cursor (host_id=? AND cursor>?)" in found, found
    assert "TEMP B-TREE" not in found, found


def test_a_group_filter_returns_its_members_events_in_cursor_order(any_store):
    """EventFilter.group was validated but never applied. Fails before the fix."""
    stored = add(any_store, ["a", "b", "c", "a", "c", "b", "a"])
    flt = admin_pb.EventFilter(group="mail")
    found = any_store.list_events(flt, 0, 100, hosts=["a", "b"])
    assert [e.cursor for e in found] == [e.cursor for e in stored if e.host_id in "ab"]
    newest = any_store.list_events(flt, 0, 2, newest_first=True, hosts=["a", "b"])
    assert [e.cursor for e in newest] == [7, 6]
    # With a host as well: that host, if it is a member; nothing otherwise.
    both = admin_pb.EventFilter(group="mail", host_id="b")
    assert {e.host_id for e in any_store.list_events(both, 0, 100, hosts=["a", "b"])} == {"b"}
    outside = admin_pb.EventFilter(group="mail", host_id="c")
    assert any_store.list_events(outside, 0, 100, hosts=["a", "b"]) == []


def test_pruning_goes_by_count_keeping_the_newest(any_store):
    add(any_store, ["a"] * 30)
    assert any_store.prune_events(NOW - DAY, keep=10, sinks=[], batch=8) == 8
    assert any_store.prune_events(NOW - DAY, keep=10, sinks=[], batch=100) == 12
    assert any_store.prune_events(NOW - DAY, keep=10, sinks=[], batch=100) == 0
    remaining = any_store.list_events(admin_pb.EventFilter(), 0, 100)
    assert [e.cursor for e in remaining] == list(range(21, 31))


def test_pruning_goes_by_age_and_stops_at_the_first_recent_event(any_store):
    add(any_store, ["a"] * 5, NOW - 10 * DAY)
    add(any_store, ["a"] * 3, NOW)
    add(any_store, ["a"] * 2, NOW - 10 * DAY)  # a clock that went back: kept behind a recent one
    assert any_store.prune_events(NOW - DAY, keep=1000, sinks=[], batch=100) == 5
    remaining = any_store.list_events(admin_pb.EventFilter(), 0, 100)
    assert [e.cursor for e in remaining] == list(range(6, 11))


def test_pruning_never_removes_the_newest_event_so_cursors_never_start_over(any_store):
    add(any_store, ["a"] * 3, NOW - 10 * DAY)
    assert any_store.prune_events(NOW, keep=1000, sinks=[], batch=100) == 2
    assert [e.cursor for e in add(any_store, ["a"])] == [4]


def test_pruning_keeps_what_a_sink_has_not_handed_off_and_dead_letters(any_store):
    any_store.start_webhook("pager")  # at the end of the (empty) log
    any_store.start_webhook("gone")  # a sink no longer configured holds nothing back
    stored = add(any_store, ["a"] * 20, NOW - 10 * DAY)
    any_store.add_dead_letter("pager", stored[2].id, 8, "HTTP 500", NOW, 0)
    assert any_store.prune_events(NOW, keep=1000, sinks=["pager"], batch=100) == 0
    any_store.set_webhook_cursor("pager", 12)
    assert any_store.prune_events(NOW, keep=1000, sinks=["pager"], batch=100) == 11
    remaining = [e.cursor for e in any_store.list_events(admin_pb.EventFilter(), 0, 100)]
    assert remaining == [3, *range(13, 21)]
    assert [d.cursor for d in any_store.list_dead_letters("pager")] == [3]
