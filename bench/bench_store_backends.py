"""The store backends side by side: event ingest and failover commits, SQLite vs etcd.

Run from anywhere: `python bench/bench_store_backends.py [--batches 200] [--commits 200]`.

Both stores are measured in the same run on this machine: SQLite (one file,
synchronous=FULL) and etcd (a real three-member cluster of Debian's etcd, started
here on loopback ports, every member fsyncing to this disk), through the Store
interface as the controller calls it (one thread):

1. Ingest: `--batches` batches of 100 new events each (`add_events`); events/s.
2. Failover commits: `--commits` steps (propose, then approve with the epoch taken,
   a command queued and an audit row), each `commit_failover` timed; p50/p99. On
   etcd every commit is fenced by a real election's term.
3. Leader takeover on etcd: a leader process (lease TTL 2 s) is SIGKILLed and a
   contender here takes over once the lease has expired; then that leader resigns
   and another takes over at once. Seconds from the kill (the resignation) to the
   new term.

Prints the figures and the etcd/SQLite ratio. No target: the figures are for
docs/performance.md and for sizing (docs/operations.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import ROOT, machine, percentile

from etcdkit import etcd_cluster  # isort: skip (common sets sys.path)

from controller.failover.machine import Failover, approve
from controller.failover.model import FailoverState, Trigger
from controller.store.etcd.election import Election
from controller.store.etcd.kv import EtcdKV
from controller.store.etcd.store import EtcdStore
from controller.store.interface import FailoverCommit, Store
from controller.store.sqlite.store import SQLiteStore
from hangwatch.ids import new_ulid
from hangwatch.v1 import types_pb2 as pb


def ingest(store: Store, batches: int) -> float:
    """Events per second stored, batches of 100."""
    work = [
        [pb.Event(id=new_ulid(), host_id=f"h{b % 50}", host_seq=b, kind="X") for _ in range(100)]
        for b in range(batches)
    ]
    started = time.perf_counter()
    for batch in work:
        assert len(store.add_events(batch, time.time())) == len(batch)
    return batches * 100 / (time.perf_counter() - started)


def commits(store: Store, count: int) -> list[float]:
    """Seconds per commit_failover, for `count` steps (half proposals, half approvals)."""
    groups = [f"g{i}" for i in range(count // 2)]
    store.seed_groups([(g, "a") for g in groups])
    took = []
    for group in groups:
        f = Failover(new_ulid(), group, FailoverState.PROPOSED, Trigger.MANUAL, "a", "b",
                     "bench", "alice", time.time())  # fmt: skip
        demote = pb.Command(id=f"{f.id}-demote", group=group, epoch=1, failover_id=f.id)
        for change in (
            FailoverCommit(f, audit=("alice", "operator", "propose", f.id)),
            FailoverCommit(
                approve(f, "bob", time.time()),
                epoch=(group, 1),
                commands=(("a", demote),),
                audit=("bob", "approver", "approve", f.id),
            ),
        ):
            started = time.perf_counter()
            store.commit_failover(change, time.time())
            took.append(time.perf_counter() - started)
    return took


def takeover(endpoints: list[str]) -> tuple[float, float]:
    """Seconds to a new term after the leader is killed, and after it resigns."""
    prefix = f"/bench-{uuid.uuid4().hex[:8]}/"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    dead = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "etcd_contender.py"), ",".join(endpoints),
         prefix, "killed"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert dead.stdout is not None and dead.stdout.readline().startswith("term ")
    contenders = [
        Election(EtcdKV(endpoints, timeout=3), prefix + "leader", name, ttl=2, renew_deadline=1.5)
        for name in ("b", "c")
    ]
    for c in contenders:
        c.start()
    dead.kill()
    dead.wait()
    killed = time.perf_counter()
    while not any(c.term for c in contenders):
        time.sleep(0.005)
    after_kill = time.perf_counter() - killed
    (leader,) = [c for c in contenders if c.term]
    resigned = time.perf_counter()
    leader.stop()
    while not any(c.term for c in contenders):
        time.sleep(0.005)
    after_resign = time.perf_counter() - resigned
    for c in contenders:
        c.stop()
    return after_kill, after_resign


def measure(store: Store, batches: int, count: int) -> tuple[float, list[float]]:
    try:
        return ingest(store, batches), commits(store, count)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--commits", type=int, default=200)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="hangwatch-bench-") as tmp:
        results = {"sqlite": measure(SQLiteStore(Path(tmp) / "c.db"), args.batches, args.commits)}
        with etcd_cluster(Path(tmp)) as etcd:
            prefix = f"/bench-{uuid.uuid4().hex[:8]}/"
            election = Election(EtcdKV(etcd.endpoints, timeout=3), prefix + "leader", "bench",
                                ttl=5, renew_deadline=3.0)  # fmt: skip
            election.start()
            assert election.wait_term(30) is not None
            store = EtcdStore(EtcdKV(etcd.endpoints, timeout=3), prefix, election)
            results["etcd"] = measure(store, args.batches, args.commits)
            election.stop()
            after_kill, after_resign = takeover(etcd.endpoints)
    for name, (rate, took) in results.items():
        ms = [t * 1000 for t in took]
        print(
            f"{name:6}: ingest {rate:8.0f} events/s (batches of 100); failover commit "
            f"p50 {percentile(ms, 50):6.2f} ms, p99 {percentile(ms, 99):6.2f} ms"
        )
    print(
        f"etcd leader takeover: {after_kill:.2f} s after SIGKILL of a leader (lease TTL 2 s), "
        f"{after_resign:.2f} s after a leader resigned"
    )
    (s_rate, s_took), (e_rate, e_took) = results["sqlite"], results["etcd"]
    print(
        f"etcd/sqlite: ingest x{e_rate / s_rate:.2f}, commit p50 "
        f"x{percentile(e_took, 50) / percentile(s_took, 50):.2f}"
    )


if __name__ == "__main__":
    main()
