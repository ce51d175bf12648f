"""One bad value never poisons the controller: refused at ingest naming the field, or,
if stored before ingest checked it, left out of listings and webhooks alone.

A real controller process; requests sent as an agent would send them.
"""

from __future__ import annotations

import json
import sqlite3
import time

import grpc
import pytest
from clusterkit import Admin, kernel_event
from receivers import Receiver

from hangwatch import pbtime
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster, wait_for

HOST = "h1"


def agent(cluster: LocalCluster) -> agent_grpc.AgentServiceStub:
    return agent_grpc.AgentServiceStub(grpc.insecure_channel(cluster.address))


def report(
    stub: agent_grpc.AgentServiceStub, events: list[pb.Event]
) -> agent_pb.ReportEventsResponse:
    return stub.ReportEvents(agent_pb.ReportEventsRequest(host_id=HOST, events=events), timeout=10)


def refused(call: object, *args: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=10)  # type: ignore[operator]
    return caught.value


def stored_events(cluster: LocalCluster) -> int:
    db = sqlite3.connect(cluster.workdir / "controller-data" / "controller.db", timeout=10)
    try:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        db.close()


def test_a_mixed_sign_duration_is_refused_naming_its_path_and_nothing_is_stored(cluster):
    """Before: Duration(seconds=1, nanos=-1) in blocked_for was acknowledged, and from
    then on every webhook worker and `-o json events` failed on it."""
    cluster.start_controller()
    stub = agent(cluster)
    events = [kernel_event(i + 1) for i in range(4)]
    events[3].evidence.stuck_tasks.add(pid=42, comm="imapd").blocked_for.CopyFrom(
        pbtime.duration(0)
    )
    events[3].evidence.stuck_tasks[0].blocked_for.seconds = 1
    events[3].evidence.stuck_tasks[0].blocked_for.nanos = -1
    error = refused(stub.ReportEvents, agent_pb.ReportEventsRequest(host_id=HOST, events=events))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("events[3].evidence.stuck_tasks[0].blocked_for.nanos: ")
    assert stored_events(cluster) == 0


def test_negative_nanos_are_invalid_argument_in_events_and_heartbeats(cluster):
    """Before: negative nanos in occurred_at came back UNKNOWN ("Unexpected
    ValueError", which the agent retries for ever), and in a heartbeat's since or
    sent_at they were stored and broke `hosts -o json`."""
    cluster.start_controller()
    stub = agent(cluster)
    stub.Register(agent_pb.RegisterRequest(host_id=HOST, boot_id="b1"), timeout=10)
    event = kernel_event(1)
    event.occurred_at.nanos = -1
    error = refused(stub.ReportEvents, agent_pb.ReportEventsRequest(host_id=HOST, events=[event]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("events[0].occurred_at.nanos: -1 is outside")
    beat = agent_pb.HeartbeatRequest(
        host_id=HOST, boot_id="b1", sent_at={"seconds": 5, "nanos": -1}
    )
    error = refused(stub.Heartbeat, beat)
    assert (error.code(), error.details().split(":")[0]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "sent_at.nanos",
    )
    beat = agent_pb.HeartbeatRequest(
        host_id=HOST,
        boot_id="b1",
        mounts=[pb.MountHealth(mount="/srv", state=1, since={"seconds": 5, "nanos": -7})],
    )
    error = refused(stub.Heartbeat, beat)
    assert error.details().startswith("mounts[0].since.nanos: -7")
    out = cluster.ctl("-o", "json", "hosts")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["hosts"][0]["health"] == []


def test_an_oversized_registration_or_heartbeat_is_refused(cluster, admin: Admin):
    """Before: a 3.8 MB inventory.fs_tools, or a heartbeat of 256 mounts of 4 KB paths,
    was stored, and made ListHosts too large for every user."""
    cluster.start_controller()
    stub = agent(cluster)
    tools = pb.Inventory(fs_tools={f"tool{i}": "6." + "0" * 4000 for i in range(950)})
    error = refused(
        stub.Register, agent_pb.RegisterRequest(host_id=HOST, boot_id="b1", inventory=tools)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("inventory.fs_tools[tool")
    assert "characters long, the limit for identifier is 256" in error.details()
    stub.Register(agent_pb.RegisterRequest(host_id=HOST, boot_id="b1"), timeout=10)
    mounts = [pb.MountHealth(mount=f"/{i:04}" + "p" * 4000, state=1) for i in range(256)]
    beat = agent_pb.HeartbeatRequest(host_id=HOST, boot_id="b1", mounts=mounts)
    error = refused(stub.Heartbeat, beat)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("request: is ")
    assert admin.hosts()[HOST].health == []


def test_control_characters_in_ids_and_paths_are_refused(cluster):
    """Before: mount paths and host ids with ESC were stored and printed raw."""
    cluster.start_controller()
    stub = agent(cluster)
    error = refused(
        stub.Register,
        agent_pb.RegisterRequest(
            host_id=HOST, boot_id="b1", mounts=[pb.Mount(path="/srv/\x1b[2Jmail")]
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("mounts[0].path: '/srv/\\x1b[2Jmail' has the unprintable")
    event = kernel_event(1)
    event.mount = "/srv/\x1b[8m"
    error = refused(stub.ReportEvents, agent_pb.ReportEventsRequest(host_id=HOST, events=[event]))
    assert error.details().startswith("events[0].mount: ")
    assert stored_events(cluster) == 0


def test_two_events_with_one_id_are_refused_unless_identical(cluster):
    """Before: both were acknowledged and the second silently dropped."""
    cluster.start_controller()
    stub = agent(cluster)
    first = kernel_event(1, summary="the first")
    other = pb.Event()
    other.CopyFrom(first)
    other.summary = "another event under the same id"
    error = refused(
        stub.ReportEvents, agent_pb.ReportEventsRequest(host_id=HOST, events=[first, other])
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"events[1].id: {first.id} is also the id of events[0]")
    assert stored_events(cluster) == 0
    # The same event twice (a resend within one batch) is stored and acknowledged once.
    response = report(stub, [first, first, kernel_event(2)])
    assert response.acked_ids[0] == first.id
    assert len(response.acked_ids) == 2
    assert stored_events(cluster) == 2


def bad_duration_body(seq: int) -> tuple[str, bytes]:
    """An event as a controller before these checks stored it: blocked_for 1 s - 1 ns."""
    event = kernel_event(seq, summary="stored before ingest checked durations")
    task = event.evidence.stuck_tasks.add(pid=42, comm="imapd")
    task.blocked_for.seconds = 1
    task.blocked_for.nanos = -1
    return event.id, event.SerializeToString()


def test_an_old_unshowable_event_is_left_out_and_webhooks_and_listings_go_on(
    cluster: LocalCluster, receiver: Receiver
):
    """Before: the webhook worker failed on such an event, restarted, failed again and
    never delivered a later one, even after a restart; `-o json events` exited 1."""
    cluster.controller_config = {
        **cluster.controller_config,
        "webhooks": [{"name": "json", "kind": "json", "url": receiver.url("/json"), "secret": "s"}],
    }
    receiver.start()
    cluster.start_controller()
    stub = agent(cluster)
    report(stub, [kernel_event(1, summary="before")])
    wait_for(lambda: len(receiver.bodies("/json")) == 1, 15, "the first event at the receiver")
    bad_id, body = bad_duration_body(2)
    db = sqlite3.connect(cluster.workdir / "controller-data" / "controller.db", timeout=10)
    with db:
        db.execute(
            "INSERT INTO events (id, host_id, host_seq, mount, kind, severity, occurred_at, "
            "received_at, body) VALUES (?, ?, 2, '', 'KERNEL_HUNG_TASK', 3, ?, ?, ?)",
            (bad_id, HOST, time.time(), time.time(), body),
        )
    db.close()
    report(stub, [kernel_event(3, summary="after")])
    wait_for(lambda: len(receiver.bodies("/json")) == 2, 15, "the later event at the receiver")
    assert [b["summary"] for b in receiver.bodies("/json")] == ["before", "after"]
    out = cluster.ctl("-o", "json", "events")
    assert out.returncode == 0, out.stderr
    assert [e["summary"] for e in json.loads(out.stdout)["events"]] == ["before", "after"]
    assert f"event {bad_id} (cursor 2) is left out: evidence.stuck_tasks[0].blocked_for.nanos" in (
        cluster.procs[0].log_text()
    )
    # A restart changes nothing: the worker resumes and stays unblocked.
    cluster.procs[0].stop()
    cluster.start_controller()
    report(agent(cluster), [kernel_event(4, summary="after the restart")])
    wait_for(lambda: len(receiver.bodies("/json")) == 3, 15, "an event after the restart")


def test_an_old_unshowable_heartbeat_leaves_the_host_listed_without_it(cluster, admin: Admin):
    """Before: one stored heartbeat with negative nanos made `hosts -o json` exit 1 for
    everybody."""
    cluster.start_controller()
    stub = agent(cluster)
    stub.Register(agent_pb.RegisterRequest(host_id=HOST, boot_id="b1"), timeout=10)
    stub.Register(agent_pb.RegisterRequest(host_id="h2", boot_id="b2"), timeout=10)
    beat = agent_pb.HeartbeatRequest(host_id=HOST, boot_id="b1")
    beat.mounts.add(mount="/srv", state=pb.HEALTH_STATE_OK).since.nanos = -1
    db = sqlite3.connect(cluster.workdir / "controller-data" / "controller.db", timeout=10)
    with db:
        db.execute(
            "UPDATE hosts SET last_heartbeat = ?, last_heartbeat_at = ? WHERE host_id = ?",
            (beat.SerializeToString(), time.time(), HOST),
        )
    db.close()
    out = cluster.ctl("-o", "json", "hosts")
    assert out.returncode == 0, out.stderr
    hosts = {h["host_id"]: h for h in json.loads(out.stdout)["hosts"]}
    assert sorted(hosts) == [HOST, "h2"]
    assert hosts[HOST]["health"] == []
    assert "host h1's last heartbeat is left out: mounts[0].since.nanos" in (
        cluster.procs[0].log_text()
    )
