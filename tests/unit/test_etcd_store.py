"""What only a shared store must show: two controllers writing at once keep one gapless
event log, one leader among contenders, and leader-only writes refused once the
writer's term is over."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from etcdkit import EtcdCluster
from storekit import PinnedTerm

from controller.failover.machine import Failover, approve
from controller.failover.model import FailoverState, Trigger
from controller.leadership import SoleLeader
from controller.store.etcd.compaction import Compactor
from controller.store.etcd.election import Election
from controller.store.etcd.kv import EtcdKV
from controller.store.etcd.store import EtcdStore
from controller.store.interface import FailoverCommit, GroupRow
from hangwatch.errors import HangwatchError, NotLeader
from hangwatch.ids import new_ulid
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb


def kv(etcd: EtcdCluster) -> EtcdKV:
    return EtcdKV(etcd.endpoints, timeout=3.0)


def prefix() -> str:
    return f"/test-{uuid.uuid4().hex[:12]}/"


def test_two_controllers_writing_at_once_keep_one_gapless_log(etcd: EtcdCluster) -> None:
    where = prefix()
    writers = [EtcdStore(kv(etcd), where), EtcdStore(kv(etcd), where)]
    readers = [EtcdStore(kv(etcd), where), EtcdStore(kv(etcd), where)]
    batches = [[pb.Event(id=new_ulid(), host_id=f"h{i}", host_seq=1) for i in range(20)]]
    for _ in range(29):
        batches.append([pb.Event(id=new_ulid(), host_id="h", host_seq=1) for _ in range(20)])
    errors: list[BaseException] = []

    def write(store: EtcdStore) -> None:
        try:
            # Both send every batch, as an agent retrying on the other controller would.
            for batch in batches:
                store.add_events(batch, time.time())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    # A WatchEvents reader that resumes on the other controller after every page.
    seen: list[int] = []
    ids: list[str] = []
    turn = 0
    deadline = time.monotonic() + 60
    while len(seen) < 600 and time.monotonic() < deadline:
        page = readers[turn % 2].list_events(admin_pb.EventFilter(), seen[-1] if seen else 0, 37)
        seen += [e.cursor for e in page]
        ids += [e.id for e in page]
        turn += 1
    for t in threads:
        t.join()
    assert errors == []
    assert seen == list(range(1, 601)), "a resumed reader saw a gap or a repeat"
    assert sorted(ids) == sorted(e.id for b in batches for e in b)
    assert readers[0].last_cursor() == 600
    for store in writers + readers:
        store.close()


def test_one_leader_among_three_and_the_next_takes_over_when_it_resigns(
    etcd: EtcdCluster,
) -> None:
    key = prefix() + "leader"
    contenders = [
        Election(kv(etcd), key, f"controller-{i}", ttl=3, renew_deadline=2.0) for i in range(3)
    ]
    for c in contenders:
        c.start()
    try:
        deadline = time.monotonic() + 20
        while not any(c.term for c in contenders) and time.monotonic() < deadline:
            time.sleep(0.05)
        leaders = [c for c in contenders if c.term is not None]
        assert len(leaders) == 1
        first = leaders[0]
        assert first.leader() == first.identity
        term = first.term
        assert term is not None
        first.stop()
        assert first.term is None
        rest = [c for c in contenders if c is not first]
        deadline = time.monotonic() + 10
        while not any(c.term for c in rest) and time.monotonic() < deadline:
            time.sleep(0.05)
        (second,) = [c for c in rest if c.term is not None]
        assert second.term is not None and second.term > term
        assert [c for c in rest if c.term is not None] == [second]
    finally:
        for c in contenders:
            c.stop()


def test_leader_writes_are_refused_once_the_writers_term_is_over(etcd: EtcdCluster) -> None:
    where = prefix()
    election = Election(kv(etcd), where + "leader", "a", ttl=3, renew_deadline=2.0)
    election.start()
    term = election.wait_term(20)
    assert term is not None
    store = EtcdStore(kv(etcd), where, election)
    store.seed_groups([("mail", "a")])
    f = Failover(
        id=new_ulid(),
        group="mail",
        state=FailoverState.PROPOSED,
        trigger=Trigger.MANUAL,
        from_host="a",
        to_host="b",
        reason="drill",
        proposed_by="alice",
        created_at=1.0,
    )
    store.commit_failover(FailoverCommit(f), 1.0)
    # This process knows it lost: refused before anything is sent.
    election.stop()
    with pytest.raises(NotLeader, match="not the leader"):
        store.commit_failover(FailoverCommit(approve(f, "bob", 2.0), epoch=("mail", 1)), 2.0)
    # A writer that checked before its term ended (then paused) is refused by etcd.
    successor = Election(kv(etcd), where + "leader", "b", ttl=3, renew_deadline=2.0)
    successor.start()
    assert successor.wait_term(20) is not None
    stale = EtcdStore(kv(etcd), where, PinnedTerm(where + "leader", term))
    with pytest.raises(NotLeader, match=f"term {term} has ended"):
        stale.commit_failover(FailoverCommit(approve(f, "bob", 2.0), epoch=("mail", 1)), 2.0)
    with pytest.raises(NotLeader):
        stale.set_auto_blocked_until("mail", 99.0)
    assert store.groups()["mail"] == GroupRow("mail", "a", 0, None)
    assert store.get_failover(f.id).state is FailoverState.PROPOSED  # type: ignore[union-attr]
    # Writes anyone may make need no leadership.
    stale.append_audit(3.0, "alice", "operator", "note", "mail", "still allowed")
    successor.stop()
    for s in (store, stale):
        s.close()


def test_compaction_trims_history_and_keeps_current_keys(etcd: EtcdCluster) -> None:
    where = prefix()
    store = EtcdStore(kv(etcd), where)
    for i in range(5):
        store.set_setting("automation", str(i))
    compactor = Compactor(kv(etcd), SoleLeader(), keep=2, interval=60)
    upto = compactor.compact_once()
    assert upto > 0
    assert compactor.compact_once() == 0  # nothing new since
    assert store.get_setting("automation", "on") == "4"
    with pytest.raises(HangwatchError, match="compacted"):
        kv(etcd).get(where + "settings/automation", revision=upto - 1)
    store.close()
