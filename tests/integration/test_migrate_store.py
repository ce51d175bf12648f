"""`hangwatch-controller migrate-store` copies an SQLite installation into etcd whole:
cursors, the audit chain, commands and webhook state read back the same; a prefix that
holds anything is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from etcdkit import EtcdCluster

from controller.audit import verify
from controller.failover.machine import Failover, approve
from controller.failover.model import FailoverState, Trigger
from controller.store.etcd.kv import EtcdKV
from controller.store.etcd.store import EtcdStore
from controller.store.interface import AdvisoryRow, FailoverCommit, Store
from controller.store.sqlite.store import SQLiteStore
from controller.upgrades.planner import Plan, PlanHost, PlanState
from hangwatch.ids import new_ulid
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]


def fill(store: SQLiteStore) -> Failover:
    """Some of everything, through the store's own interface."""
    store.register_host(
        agent_pb.RegisterRequest(
            host_id="a", boot_id="b1", inventory=pb.Inventory(kernel_release="6.1")
        ),
        1.0,
    )
    store.record_heartbeat(agent_pb.HeartbeatRequest(host_id="a", boot_id="b1"), 2.0)
    store.set_needs_clear("a", "demoted")
    for n in range(3):
        store.add_events(
            [pb.Event(id=new_ulid(), host_id="a", host_seq=10 * n + i) for i in range(50)], 3.0
        )
    store.seed_groups([("mail", "a"), ("web", "c")])
    f = Failover(new_ulid(), "mail", FailoverState.PROPOSED, Trigger.MANUAL, "a", "b", "drill",
                 "alice", 4.0)  # fmt: skip
    store.commit_failover(FailoverCommit(f, audit=("alice", "operator", "propose", "x")), 4.0)
    demote = pb.Command(id=f"{f.id}-demote", group="mail", epoch=1, failover_id=f.id)
    promote = pb.Command(id=f"{f.id}-promote", group="mail", epoch=1, failover_id=f.id)
    step = approve(f, "bob", 5.0)
    store.commit_failover(
        FailoverCommit(step, epoch=("mail", 1), commands=(("a", demote), ("b", promote))), 5.0
    )
    store.record_command_result(pb.CommandResult(command_id=demote.id, host_id="a"), 6.0)
    store.record_fence_result(f.id, True, "off", 6.0)
    for i in range(5):
        store.append_audit(7.0 + i, "bob", "admin", "note", "mail", f"n{i}")
    store.set_maintenance("host", "a", True, "disk", "bob", None, 8.0)
    store.set_maintenance("group", "web", True, "over", "bob", 8.5, 8.0)  # expired later
    store.set_setting("automation", "off")
    store.open_incident("i1", "mail", "a", 9.0, "lockup")
    assert store.start_webhook("pd") == 150
    store.add_dead_letter("pd", store.list_events(admin_pb.EventFilter(), 9, 1)[0].id, 8,
                          "HTTP 503", 10.0, 10)  # fmt: skip
    store.add_dead_letter("pd", store.list_events(admin_pb.EventFilter(), 10, 1)[0].id, 1,
                          "HTTP 400", 10.0, 11)  # fmt: skip
    store.requeue_dead_letters("pd", [2], 11.0)
    store.set_alert_key("pd", "a", "/srv/mail", "INC-1")
    store.add_advisory(AdvisoryRow("ADV-1", ">=6.1", "xfs", "hang", "", 1.0, "alice"))
    plan = Plan("p1", "6.2", "", PlanState.RUNNING, 60.0, 1.0, "alice", (PlanHost("a"),))
    store.create_plan(plan, 12.0)
    return f


def picture(store: Store, failover_id: str) -> dict[str, object]:
    """What the controller would read, through the Store interface."""
    return {
        "hosts": store.list_hosts(),
        "events": store.list_events(admin_pb.EventFilter(), 0, 1000),
        "host_seq": store.last_host_seq("a"),
        "groups": store.groups(),
        "failovers": store.list_failovers(),
        "pending a": store.pending_commands("a"),
        "pending b": store.pending_commands("b"),
        "fence": store.fence_result(failover_id),
        "audit": store.list_audit(),
        "maintenance": store.list_maintenance(8.0),
        "automation": store.get_setting("automation", "on"),
        "incidents": store.list_incidents(),
        "webhook": store.start_webhook("pd"),
        "dead": store.list_dead_letters(),
        "requeued": store.requeued_dead_letters("pd"),
        "alert": store.alert_key("pd", "a", "/srv/mail"),
        "advisories": store.list_advisories(),
        "plans": store.list_plans(),
    }


def migrate(path: Path, etcd: EtcdCluster, prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller", "migrate-store", "--from", f"sqlite:{path}",
         "--to", "etcd:" + ",".join(etcd.endpoints), "--prefix", prefix],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def test_migrate_store_copies_everything_and_refuses_a_used_prefix(
    tmp_path: Path, etcd: EtcdCluster
) -> None:
    path = tmp_path / "controller.db"
    sqlite = SQLiteStore(path)
    f = fill(sqlite)
    before = picture(sqlite, f.id)
    sqlite.close()
    prefix = f"/migrated-{uuid.uuid4().hex[:8]}/"
    done = migrate(path, etcd, prefix)
    assert done.returncode == 0, done.stderr
    assert "last cursor 150, audit chain of 6 rows verified" in done.stdout
    copy = EtcdStore(EtcdKV(etcd.endpoints, timeout=3), prefix)
    after = picture(copy, f.id)
    for kind, value in before.items():
        assert after[kind] == value, kind
    verdict = verify(copy.list_audit())
    assert (verdict.entries, verdict.bad_seq, verdict.detail) == (6, None, "")
    # The copy goes on where the source stopped: the next event, the next audit row.
    (nxt,) = copy.add_events([pb.Event(id=new_ulid(), host_id="a", host_seq=99)], 13.0)
    assert nxt.cursor == 151
    assert copy.append_audit(14.0, "bob", "admin", "note", "mail", "after").seq == 7
    again = migrate(path, etcd, prefix)
    assert again.returncode == 1
    assert f"etcd prefix {prefix} already holds" in again.stderr
    copy.close()
