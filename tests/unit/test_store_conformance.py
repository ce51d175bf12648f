"""Every store backend keeps the Store interface's promises alike: hosts, the event log,
the audit chain, commands, operations, incidents, advisories and plans."""

from __future__ import annotations

import dataclasses

from controller import audit
from controller.failover.machine import Failover, approve
from controller.failover.model import FailoverState, Trigger
from controller.store.interface import AdvisoryRow, FailoverCommit
from controller.upgrades.drafts import Draft, DraftState, Sighting
from controller.upgrades.planner import Plan, PlanHost, PlanState
from hangwatch.ids import new_ulid
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb


def registration(host: str, boot: str = "b1", kernel: str = "6.1.0") -> agent_pb.RegisterRequest:
    return agent_pb.RegisterRequest(
        host_id=host,
        boot_id=boot,
        agent_version="1.0",
        inventory=pb.Inventory(kernel_release=kernel),
    )


def event(host: str, seq: int, kind: str = "PROBE_SLOW", mount: str = "/srv") -> pb.Event:
    return pb.Event(
        id=new_ulid(), host_id=host, host_seq=seq, kind=kind, mount=mount, severity=seq % 4
    )


def proposal(group: str = "mail") -> Failover:
    return Failover(
        id=new_ulid(),
        group=group,
        state=FailoverState.PROPOSED,
        trigger=Trigger.MANUAL,
        from_host="a",
        to_host="b",
        reason="drill",
        proposed_by="alice",
        created_at=1.0,
    )


def test_hosts_heartbeats_and_the_needs_clear_mark(stores):
    store = stores.open()
    store.register_host(registration("b"), 1.0)
    store.register_host(registration("a"), 1.0)
    beat = agent_pb.HeartbeatRequest(host_id="a", boot_id="b1", spool_depth=7)
    assert store.record_heartbeat(beat, 2.0)
    # Another boot than the registered one, or an unknown host: register again.
    assert not store.record_heartbeat(agent_pb.HeartbeatRequest(host_id="a", boot_id="b2"), 2.0)
    assert not store.record_heartbeat(agent_pb.HeartbeatRequest(host_id="x", boot_id="b1"), 2.0)
    a = store.get_host("a")
    assert a is not None
    assert (a.last_heartbeat_at, a.last_heartbeat.spool_depth) == (2.0, 7)  # type: ignore[union-attr]
    assert [h.host_id for h in store.list_hosts()] == ["a", "b"]
    assert store.get_host("x") is None
    assert store.set_needs_clear("a", "failed over from")
    assert not store.set_needs_clear("x", "unknown")
    store.register_host(registration("a", "b2"), 3.0)  # same kernel: still marked
    assert store.get_host("a").needs_clear == "failed over from"  # type: ignore[union-attr]
    store.register_host(registration("a", "b3", kernel="6.1.1"), 4.0)  # a new kernel clears
    assert store.get_host("a").needs_clear == ""  # type: ignore[union-attr]


def test_a_removed_host_is_forgotten_but_its_events_stay(stores):
    store = stores.open()
    store.register_host(registration("a"), 1.0)
    store.register_host(registration("b"), 1.0)
    assert store.record_heartbeat(agent_pb.HeartbeatRequest(host_id="a", boot_id="b1"), 2.0)
    store.set_needs_clear("a", "failed over from")
    store.add_events([event("a", 1)], 2.0)
    assert store.remove_host("a")
    assert not store.remove_host("a")
    assert not store.remove_host("nobody")
    assert store.get_host("a") is None
    assert [h.host_id for h in store.list_hosts()] == ["b"]
    # Its agent, should it run still, is asked to register again.
    assert not store.record_heartbeat(agent_pb.HeartbeatRequest(host_id="a", boot_id="b1"), 3.0)
    assert [e.host_id for e in store.list_events(admin_pb.EventFilter(), 0, 10)] == ["a"]
    assert store.last_host_seq("a") == 1
    # Back on its boot: a fresh record, with no mark left from before.
    store.register_host(registration("a"), 4.0)
    again = store.get_host("a")
    assert again is not None
    assert (again.needs_clear, again.last_heartbeat_at) == ("", None)


def test_dead_letters_are_counted_per_sink_until_delivered(stores):
    store = stores.open()
    stored = store.add_events([event("a", i) for i in range(1, 4)], 1.0)
    assert store.dead_letter_counts() == {}
    for sink, e in (("pager", stored[0]), ("pager", stored[1]), ("slack", stored[2])):
        store.start_webhook(sink)
        store.add_dead_letter(sink, e.id, 8, "HTTP 500", 2.0, e.cursor)
    assert store.dead_letter_counts() == {"pager": 2, "slack": 1}
    # Requeued letters wait for their resend: still kept, still counted.
    assert store.requeue_dead_letters("slack", [], 3.0) == 1
    assert store.dead_letter_counts() == {"pager": 2, "slack": 1}
    (letter,) = store.requeued_dead_letters("slack")
    store.settle_dead_letter(letter.id, True, 1, "", 4.0)
    assert store.dead_letter_counts() == {"pager": 2}


def test_the_event_log_stores_each_id_once_and_filters(stores):
    store = stores.open()
    batch = [event("a", i) for i in range(1, 151)]  # more than one etcd transaction holds
    batch.append(batch[0])  # an id twice in one call is stored once
    stored = store.add_events(batch, 5.0)
    assert [e.cursor for e in stored] == list(range(1, 151))
    assert stored[0].received_at.seconds == 5
    mixed = [batch[3], event("b", 1, kind="LOCKUP_CONFIRMED", mount="/m")]
    assert [e.cursor for e in store.add_events(mixed, 6.0)] == [151]
    assert (store.last_cursor(), store.last_host_seq("a"), store.last_host_seq("b")) == (
        151,
        150,
        1,
    )
    assert store.last_host_seq("nobody") == 0
    page = store.list_events(admin_pb.EventFilter(), 140, 5)
    assert [e.cursor for e in page] == [141, 142, 143, 144, 145]
    assert page[0].id == batch[140].id and page[0].received_at.seconds == 5
    newest = store.list_events(admin_pb.EventFilter(), 148, 10, newest_first=True)
    assert [e.cursor for e in newest] == [151, 150, 149]
    by_kind = store.list_events(admin_pb.EventFilter(kind="LOCKUP_CONFIRMED"), 0, 10)
    assert [(e.cursor, e.host_id, e.mount) for e in by_kind] == [(151, "b", "/m")]
    by_host = store.list_events(admin_pb.EventFilter(host_id="a"), 0, 1000)
    assert len(by_host) == 150
    severe = store.list_events(admin_pb.EventFilter(min_severity=3), 0, 1000)
    assert {e.severity for e in severe} == {3}


def test_the_audit_chain_verifies_and_steps_audit_in_their_commit(stores):
    store = stores.open()
    store.append_audit(1.0, "alice", "operator", "maintenance on", "a", "patching")
    store.append_audit(2.0, "bob", "viewer", "approve", "mail", "refused: role", allowed=False)
    f = proposal()
    store.commit_failover(FailoverCommit(f, audit=("alice", "operator", "propose", "x")), 3.0)
    rows = store.list_audit()
    assert [(r.seq, r.action, r.allowed) for r in rows] == [
        (1, "maintenance on", True),
        (2, "approve", False),
        (3, "propose", True),
    ]
    assert rows[2].target == "mail"
    verdict = audit.verify(rows)
    assert (verdict.entries, verdict.bad_seq, verdict.detail) == (3, None, "")
    assert [r.seq for r in store.list_audit(since_seq=1, limit=1)] == [2]


def test_commands_results_and_fence_outcomes(stores):
    store = stores.open()
    store.seed_groups([("mail", "a")])
    f = proposal()
    store.commit_failover(FailoverCommit(f), 1.0)
    demote = pb.Command(id=f"{f.id}-demote", group="mail", epoch=1, failover_id=f.id)
    step = FailoverCommit(
        approve(f, "bob", 2.0),
        epoch=("mail", 1),
        primary=("mail", "b"),
        auto_blocked_until=("mail", 99.0),
        needs_clear=("a", "demoted"),
        commands=(("a", demote),),
    )
    store.register_host(registration("a"), 1.0)
    store.commit_failover(step, 2.0)
    group = store.groups()["mail"]
    assert (group.epoch, group.primary, group.auto_blocked_until) == (1, "b", 99.0)
    assert store.get_host("a").needs_clear == "demoted"  # type: ignore[union-attr]
    assert [c.id for c in store.pending_commands("a")] == [demote.id]
    assert store.command_results([demote.id]) == {}
    first = pb.CommandResult(command_id=demote.id, host_id="a", exit_code=0)
    assert store.record_command_result(first, 3.0)
    late = pb.CommandResult(command_id=demote.id, host_id="a", exit_code=9)
    assert store.record_command_result(late, 4.0)  # known, but the first result stays
    assert not store.record_command_result(pb.CommandResult(command_id="x", host_id="a"), 4.0)
    assert store.command_results([demote.id, "x"])[demote.id].exit_code == 0
    assert store.pending_commands("a") == []
    store.record_fence_result(f.id, False, "timed out", 5.0)
    store.record_fence_result(f.id, True, "second outcome ignored", 6.0)
    assert store.fence_result(f.id) == (False, "timed out")
    assert store.fence_result("none") is None
    assert store.failover_counts() == {("mail", "APPROVED"): 1}
    assert [x.id for x in store.list_failovers(active_only=True)] == [f.id]
    assert store.list_failovers(group="other") == []
    store.set_auto_blocked_until("mail", None)
    assert store.groups()["mail"].auto_blocked_until is None


def test_maintenance_settings_incidents_advisories(stores):
    store = stores.open()
    store.set_maintenance("host", "a", True, "disk swap", "alice", None, 1.0)
    store.set_maintenance("group", "mail", True, "move", "alice", 5.0, 1.0)
    store.set_maintenance("cluster", "", True, "freeze", "bob", None, 1.0)
    assert [(w.scope, w.target) for w in store.list_maintenance(2.0)] == [
        ("cluster", ""),
        ("group", "mail"),
        ("host", "a"),
    ]
    assert [w.scope for w in store.list_maintenance(6.0)] == ["cluster", "host"]
    store.set_maintenance("host", "a", False, "", "alice", None, 7.0)
    assert [w.scope for w in store.list_maintenance(8.0)] == ["cluster"]
    assert store.get_setting("automation", "on") == "on"
    store.set_setting("automation", "off")
    assert store.get_setting("automation", "on") == "off"
    store.open_incident("i1", "mail", "a", 1.0, "lockup")
    store.open_incident("i1", "mail", "a", 9.0, "again: ignored")
    store.open_incident("i2", "web", "c", 2.0, "lockup")
    assert store.open_incident_for("mail").id == "i1"  # type: ignore[union-attr]
    store.close_incident("i1", 3.0)
    store.close_incident("i1", 4.0)  # closed once
    assert store.get_incident("i1").ended_at == 3.0  # type: ignore[union-attr]
    assert store.open_incident_for("mail") is None
    assert [i.id for i in store.list_incidents()] == ["i2", "i1"]
    assert [i.id for i in store.list_incidents(open_only=True)] == ["i2"]
    row = AdvisoryRow("ADV-1", ">=6.1,<6.2", "xfs", "log hang", "", 1.0, "alice")
    assert store.add_advisory(row)
    assert not store.add_advisory(row)
    assert store.list_advisories() == [row]
    assert store.remove_advisory("ADV-1")
    assert not store.remove_advisory("ADV-1")


def test_plans_are_created_once_and_saved_with_their_audit(stores):
    store = stores.open()
    plan = Plan("p1", "6.2", "", PlanState.RUNNING, 60.0, 1.0, "alice", (PlanHost("a"),))
    assert store.create_plan(plan, 1.0)
    assert not store.create_plan(plan, 2.0)
    done = Plan("p1", "6.2", "", PlanState.DONE, 60.0, 1.0, "alice", (PlanHost("a"),))
    store.save_plan(done, 3.0, ("hangwatch", "system", "plan done", "all hosts"))
    assert store.get_plan("p1") == done
    assert store.list_plans(open_only=True) == []
    assert [p.name for p in store.list_plans()] == ["p1"]
    assert store.list_audit()[-1].target == "p1"
    assert store.get_plan("none") is None


def test_incident_facts_lockup_signals_and_remote_ids(stores):
    store = stores.open()
    store.open_incident("i1", "mail", "a", 10.0, "lockup", "/srv", "6.1.0", "ext4")
    store.restore_incident("i1", 20.0)
    store.restore_incident("i1", 25.0)  # once: a later call changes nothing
    store.close_incident("i1", 30.0)
    row = store.get_incident("i1")
    assert row is not None
    assert (row.mount, row.kernel, row.fs_type) == ("/srv", "6.1.0", "ext4")
    assert (row.started_at, row.restored_at, row.ended_at) == (10.0, 20.0, 30.0)

    kinds = ["LOCKUP_SUSPECTED", "PROBE_SLOW", "LOCKUP_CONFIRMED", "LOCKUP_CLEARED"]
    stored = store.add_events([event("a", i + 1, kind) for i, kind in enumerate(kinds)], 1.0)
    store.add_events([event("a", 9, "LOCKUP_SUSPECTED", "/other"), event("b", 1)], 1.0)
    found = store.lockup_signals("a", "/srv", 0, 10)
    assert [e.kind for e in found] == ["LOCKUP_CLEARED", "LOCKUP_CONFIRMED", "LOCKUP_SUSPECTED"]
    before = store.lockup_signals("a", "/srv", stored[2].cursor, 1)
    assert [e.cursor for e in before] == [stored[0].cursor]

    assert store.remote_id("statuspage", "i1") is None
    store.set_remote_id("statuspage", "i1", "sp-42")
    assert store.remote_id("statuspage", "i1") == "sp-42"


def test_pages_of_every_listing(stores):
    store = stores.open()
    for host in ("c", "a", "b"):
        store.register_host(registration(host), 1.0)
    assert [h.host_id for h in store.list_hosts(after="a", limit=1)] == ["b"]
    assert [h.host_id for h in store.list_hosts(after="b")] == ["c"]

    stored = store.add_events([event("a", i + 1) for i in range(5)], 1.0)
    older = store.list_events(admin_pb.EventFilter(), 0, 2, True, None, stored[3].cursor)
    assert [e.cursor for e in older] == [stored[2].cursor, stored[1].cursor]

    for n, incident in enumerate(("i1", "i2", "i3")):
        store.open_incident(incident, "mail", "a", float(n), "lockup")
    assert [r.id for r in store.list_incidents(limit=1, before=(2.0, "i3"))] == ["i2"]

    first = proposal("g1")
    store.commit_failover(FailoverCommit(first), 1.0)
    second = proposal("g2")
    store.commit_failover(FailoverCommit(second), 2.0)
    newest = store.list_failovers(limit=1)
    assert len(newest) == 1
    rest = store.list_failovers(before=(newest[0].created_at, newest[0].id))
    assert {f.id for f in [*newest, *rest]} == {first.id, second.id}

    for n in range(3):
        store.add_dead_letter("pager", stored[n].id, 8, "HTTP 500", 1.0, stored[n].cursor)
    ids = [d.id for d in store.list_dead_letters("pager")]
    assert [d.id for d in store.list_dead_letters("pager", after_id=ids[0], limit=1)] == [ids[1]]

    assert store.last_audit_seq() == 0
    store.append_audit(1.0, "alice", "operator", "maintenance on", "a", "patching")
    assert store.last_audit_seq() == 1


def test_sightings_and_drafts_decided_once_with_their_advisory(stores):
    store = stores.open()
    seen = Sighting("e1", "a", "/srv", 5.0, "fp1")
    assert store.add_sighting(seen)
    assert not store.add_sighting(seen)
    store.add_sighting(Sighting("e2", "b", "/srv", 4.0, "fp1"))
    store.add_sighting(Sighting("e3", "b", "/srv", 6.0, "fp2"))
    assert [s.event_id for s in store.list_sightings("fp1")] == ["e2", "e1"]
    assert len(store.list_sightings()) == 3

    draft = Draft("SUSPECT-fp1", "fp1", "6.1.0", "ext4", "probe-stuck-no-io", ("f1",), "S", 7.0)
    assert store.add_draft(draft, ("hangwatch", "system", "draft", "suspect kernel"))
    assert not store.add_draft(draft)
    assert [d.id for d in store.list_drafts(open_only=True)] == [draft.id]
    accepted = dataclasses.replace(
        draft, state=DraftState.ACCEPTED, decided_by="bob", decided_at=8.0
    )
    advisory = AdvisoryRow("KB-1", "6.1.0", "ext4", "suspect", "", 8.0, "bob")
    assert store.decide_draft(accepted, advisory, ("bob", "approver", "accept", "KB-1"))
    assert not store.decide_draft(accepted, None)
    assert store.get_draft(draft.id) == accepted
    assert store.list_drafts(open_only=True) == []
    assert [a.id for a in store.list_advisories()] == ["KB-1"]
    assert [r.action for r in store.list_audit()] == ["draft", "accept"]
