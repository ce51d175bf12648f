"""Listings page by sort key, with a byte budget per page, and the store answers
"records after this key" for each of them."""

from __future__ import annotations

import dataclasses
import time

import pytest
from test_store_failovers import proposal

from controller.api import paging
from controller.api.paging import Pager
from controller.store.interface import FailoverCommit, IncidentRow
from controller.store.sqlite.store import SQLiteStore
from hangwatch.errors import Invalid
from hangwatch.ids import new_ulid
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb


def pages(request: admin_pb.ListHostsRequest, hosts: list[admin_pb.Host]) -> list[list[str]]:
    """Every page of a listing of `hosts`, by host id, as a client pages through it."""
    out = []
    while True:
        pager = Pager(request, 100, 1000)
        page, token = pager.fill(((h.host_id,), h) for h in hosts if pager.beyond((h.host_id,)))
        out.append([h.host_id for h in page])
        if not token:
            return out
        request.page_token = token


def test_a_listing_pages_by_size_and_the_last_page_has_no_token():
    hosts = [admin_pb.Host(host_id=f"h{i:02}") for i in range(7)]
    got = pages(admin_pb.ListHostsRequest(page_size=3), hosts)
    assert got == [["h00", "h01", "h02"], ["h03", "h04", "h05"], ["h06"]]
    assert pages(admin_pb.ListHostsRequest(page_size=7), hosts) == [[h.host_id for h in hosts]]


def test_a_page_stops_short_of_its_byte_budget_and_leaves_out_what_no_page_holds(monkeypatch):
    monkeypatch.setattr(paging, "PAGE_BYTES", 1000)
    hosts = [admin_pb.Host(host_id=f"h{i}", boot_id="b" * 300) for i in range(5)]
    hosts.insert(2, admin_pb.Host(host_id="h1x", boot_id="b" * 5000))
    got = pages(admin_pb.ListHostsRequest(), hosts)
    assert got == [["h0", "h1", "h2"], ["h3", "h4"]]  # about 320 bytes each


def test_page_size_and_tokens_are_checked():
    with pytest.raises(Invalid, match=r"^page_size: 1001 is above the limit 1000"):
        Pager(admin_pb.ListHostsRequest(page_size=1001), 100, 1000)
    with pytest.raises(Invalid, match=r"^page_token: is not a page token of this listing$"):
        Pager(admin_pb.ListHostsRequest(page_token="%%%"), 100, 1000)
    first = Pager(admin_pb.ListEventsRequest(page_size=1, newest_first=True), 100, 1000, (int,))
    _, token = first.fill([((9,), pb.Event()), ((8,), pb.Event())])
    # Good for the same query at another page size, for no other query.
    again = admin_pb.ListEventsRequest(page_size=5, newest_first=True, page_token=token)
    assert Pager(again, 100, 1000, (int,)).after == (9,)
    other = admin_pb.ListEventsRequest(newest_first=False, page_token=token)
    with pytest.raises(Invalid, match="repeat the request that returned it"):
        Pager(other, 100, 1000, (int,))
    with pytest.raises(Invalid, match=r"^page_token: is not a page token"):
        Pager(again, 100, 1000, (str,))


def event(seq: int) -> pb.Event:
    return pb.Event(id=new_ulid(), host_id="h1", host_seq=seq, kind="K", severity=1)


def test_the_store_lists_each_kind_of_record_after_a_key(tmp_path):
    store = SQLiteStore(tmp_path / "c.db")
    for name in ("c", "a", "b"):
        store.register_host(agent_pb.RegisterRequest(host_id=name, boot_id="x"), time.time())
    assert [h.host_id for h in store.list_hosts("a", 1)] == ["b"]
    assert [h.host_id for h in store.list_hosts()] == ["a", "b", "c"]

    store.add_events([event(i) for i in range(1, 6)], time.time())
    flt = admin_pb.EventFilter()
    assert [e.cursor for e in store.list_events(flt, 0, 2, True, before_cursor=4)] == [3, 2]
    assert [e.cursor for e in store.list_events(flt, 3, 10)] == [4, 5]

    older, newer = proposal("g1"), dataclasses.replace(proposal("g2"), created_at=2.0)
    for f in (older, newer):
        store.commit_failover(FailoverCommit(f), 3.0)
    assert [f.id for f in store.list_failovers(limit=1)] == [newer.id]
    assert [f.id for f in store.list_failovers(before=(2.0, newer.id))] == [older.id]

    for i, at in enumerate((5.0, 7.0, 6.0)):
        store.open_incident(f"I{i}", f"g{i}", "h1", at, "lockup")
    assert [r.started_at for r in store.list_incidents(limit=2)] == [7.0, 6.0]
    row: IncidentRow = store.list_incidents(limit=2)[1]
    assert [r.id for r in store.list_incidents(before=(row.started_at, row.id))] == ["I0"]

    ids = [e.id for e in store.list_events(flt, 0, 10)]
    for event_id in ids[:3]:
        store.add_dead_letter("s", event_id, 1, "refused", 1.0, 5)
    letters = store.list_dead_letters("s", limit=2)
    assert [d.event_id for d in letters] == ids[:2]
    assert [d.event_id for d in store.list_dead_letters("s", after_id=letters[-1].id)] == ids[2:3]
    assert store.last_audit_seq() == 0
    store.close()
