"""The etcd store and election against a real three-member cluster that loses members:
a paused leader's writes are refused once another leads, one member down goes
unnoticed, all down fails fast and recovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from etcdkit import EtcdCluster, etcd_cluster

from controller.store.etcd.election import Election
from controller.store.etcd.keys import load
from controller.store.etcd.kv import EtcdKV
from controller.store.etcd.store import EtcdStore
from hangwatch.errors import StoreUnavailable
from hangwatch.ids import new_ulid
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb

TESTS = Path(__file__).resolve().parent.parent


@pytest.fixture
def etcd3(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A cluster of this test's own, to kill members of."""
    with etcd_cluster(tmp_path) as cluster:
        yield cluster


def events(n: int) -> list[pb.Event]:
    return [pb.Event(id=new_ulid(), host_id="h", host_seq=1, kind="X") for _ in range(n)]


def wait_for(check, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_paused_leaders_writes_are_refused_after_another_took_over(
    etcd3: EtcdCluster,
) -> None:
    prefix = f"/test-{uuid.uuid4().hex[:8]}/"
    kv = EtcdKV(etcd3.endpoints, timeout=2)
    EtcdStore(kv, prefix).seed_groups([("mail", "a")])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    paused = subprocess.Popen(
        [sys.executable, str(TESTS / "etcd_contender.py"), ",".join(etcd3.endpoints), prefix, "A"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    successor = Election(EtcdKV(etcd3.endpoints, timeout=2), prefix + "leader", "B", ttl=2,
                         renew_deadline=1.5)  # fmt: skip
    try:
        assert paused.stdout is not None and paused.stdin is not None
        first = paused.stdout.readline()
        assert first.startswith("term "), first
        old_term = int(first.split()[1])
        successor.start()
        time.sleep(0.5)
        assert successor.term is None  # A leads and keeps its lease alive
        paused.send_signal(signal.SIGSTOP)
        # A's lease (TTL 2 s) runs out while it is stopped; B takes over after it.
        took = wait_for(lambda: successor.term is not None, 10, "B never took over")
        assert took < 2 + 2, f"takeover took {took:.1f} s"
        new_term = successor.term
        assert new_term is not None and new_term > old_term
        EtcdStore(kv, prefix, successor).set_auto_blocked_until("mail", 5.0)
        paused.send_signal(signal.SIGCONT)
        # A tries the write it had decided on before it was paused, with its old term.
        paused.stdin.write("123\n")
        paused.stdin.flush()
        answer = paused.stdout.readline()
        assert f"term {old_term} has ended" in answer, answer
        assert "leader now: False" in answer
        group = load(kv.get(prefix + "groups/mail").value)  # type: ignore[union-attr]
        assert (group["auto_blocked_until"], group["term"]) == (5.0, new_term)
    finally:
        paused.send_signal(signal.SIGCONT)
        paused.kill()
        paused.wait(10)
        successor.stop()


def test_one_member_down_goes_unnoticed(etcd3: EtcdCluster) -> None:
    prefix = f"/test-{uuid.uuid4().hex[:8]}/"
    election = Election(EtcdKV(etcd3.endpoints, timeout=2), prefix + "leader", "A", ttl=5,
                        renew_deadline=3.0)  # fmt: skip
    election.start()
    try:
        term = election.wait_term(20)
        assert term is not None
        store = EtcdStore(EtcdKV(etcd3.endpoints, timeout=2), prefix, election)
        store.add_events(events(10), 1.0)
        # The first member is the one every connection starts with.
        etcd3.kill(etcd3.members[0])
        for _ in range(20):
            store.add_events(events(10), 2.0)
            assert election.term == term
            time.sleep(0.1)
        assert store.last_cursor() == 210
        assert len(store.list_events(admin_pb.EventFilter(), 0, 1000)) == 210
        store.start_webhook("pd")  # a leader-only write, in the same term
    finally:
        election.stop()


def test_all_of_etcd_down_fails_fast_and_recovers(etcd3: EtcdCluster) -> None:
    prefix = f"/test-{uuid.uuid4().hex[:8]}/"
    election = Election(EtcdKV(etcd3.endpoints, timeout=2), prefix + "leader", "A", ttl=5,
                        renew_deadline=3.0)  # fmt: skip
    election.start()
    try:
        assert election.wait_term(20) is not None
        store = EtcdStore(EtcdKV(etcd3.endpoints, timeout=2), prefix, election)
        store.add_events(events(5), 1.0)
        for member in etcd3.members:
            etcd3.kill(member)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="no etcd member answered: http://127") as err:
            store.add_events(events(5), 2.0)
        assert time.monotonic() - started < 2.0
        assert all(e in str(err.value) for e in etcd3.endpoints)
        with pytest.raises(StoreUnavailable):
            store.last_cursor()
        # No keepalive gets through: the leader stops acting before its lease could end.
        lost = wait_for(lambda: election.term is None, 5, "the leader kept acting")
        assert lost <= 3.0 + 0.5
        for member in etcd3.members:
            etcd3.restart(member)
        etcd3.wait_healthy()
        stored = store.add_events(events(5), 3.0)
        assert [e.cursor for e in stored] == [6, 7, 8, 9, 10]
        assert wait_for(lambda: election.term is not None, 20, "no new term") < 20
    finally:
        election.stop()
