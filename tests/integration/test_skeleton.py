"""The walking skeleton end to end: controller, agents and hangwatchctl as processes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
from clusterkit import FAST_AGENT, Admin

from hangwatch import pbtime
from hangwatch.ids import new_ulid
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster, wait_for


def liveness_of(admin: Admin, host: str) -> str:
    h = admin.hosts().get(host)
    return pb.Liveness.Name(h.liveness) if h else "ABSENT"


def start_three(cluster: LocalCluster, tmp_path: Path) -> None:
    cluster.start_controller()
    for name in ("h1", "h2", "h3"):
        cluster.start_agent(name, [tmp_path], FAST_AGENT)


def test_three_agents_healthy_then_stale_unreachable_and_back(cluster, admin, tmp_path):
    start_three(cluster, tmp_path)
    wait_for(
        lambda: all(liveness_of(admin, h) == "LIVENESS_HEALTHY" for h in ("h1", "h2", "h3")),
        20,
        "three HEALTHY hosts",
    )
    out = cluster.ctl("-o", "json", "hosts")
    assert out.returncode == 0, out.stderr
    listed = {h["host_id"]: h["liveness"] for h in json.loads(out.stdout)["hosts"]}
    assert listed == {"h1": "LIVENESS_HEALTHY", "h2": "LIVENESS_HEALTHY", "h3": "LIVENESS_HEALTHY"}

    victim = next(p for p in cluster.procs if p.name == "agent-h2")
    killed_at = time.monotonic()
    victim.kill()
    wait_for(lambda: liveness_of(admin, "h2") == "LIVENESS_STALE", 5, "h2 STALE")
    stale_after = time.monotonic() - killed_at
    wait_for(lambda: liveness_of(admin, "h2") == "LIVENESS_UNREACHABLE", 5, "h2 UNREACHABLE")
    unreachable_after = time.monotonic() - killed_at
    # Configured: stale after 1.0 s, unreachable after 2.5 s, heartbeats every 0.3 s.
    assert 0.6 <= stale_after <= 1.0 + 1.0
    assert 2.1 <= unreachable_after <= 2.5 + 1.0
    assert liveness_of(admin, "h1") == "LIVENESS_HEALTHY"

    cluster.start_agent("h2", [tmp_path], FAST_AGENT)
    wait_for(lambda: liveness_of(admin, "h2") == "LIVENESS_HEALTHY", 15, "h2 HEALTHY again")
    assert sorted(admin.hosts()) == ["h1", "h2", "h3"]


def test_controller_restart_keeps_hosts_and_events_and_agents_reconnect(cluster, admin, tmp_path):
    start_three(cluster, tmp_path)
    wait_for(lambda: len(admin.hosts()) == 3, 20, "three hosts")
    report(cluster.address, "h1", [event("h1", 1)])
    controller = cluster.procs[0]
    controller.kill()
    cluster.start_controller()
    hosts = admin.hosts()
    assert sorted(hosts) == ["h1", "h2", "h3"]
    first_beat = {h: pbtime.seconds(hosts[h].last_heartbeat_at) for h in hosts}
    out = cluster.ctl("-o", "json", "events")
    assert out.returncode == 0, out.stderr
    assert [e["host_id"] for e in json.loads(out.stdout)["events"]] == ["h1"]

    def all_beat_again() -> bool:
        now = admin.hosts()
        return all(pbtime.seconds(now[h].last_heartbeat_at) > first_beat[h] for h in first_beat)

    wait_for(all_beat_again, 15, "every agent to heartbeat the restarted controller")
    wait_for(
        lambda: all(liveness_of(admin, h) == "LIVENESS_HEALTHY" for h in hosts),
        5,
        "all HEALTHY after restart",
    )


def event(host: str, seq: int, kind: str = "LOCKUP_SUSPECTED") -> pb.Event:
    return pb.Event(
        id=new_ulid(),
        host_id=host,
        host_seq=seq,
        mount="/srv/mail",
        kind=kind,
        severity=pb.SEVERITY_WARNING,
        occurred_at=pbtime.timestamp(time.time()),
        summary="test event",
    )


def report(address: str, host: str, events: list[pb.Event]) -> agent_pb.ReportEventsResponse:
    with grpc.insecure_channel(address) as channel:
        return agent_grpc.AgentServiceStub(channel).ReportEvents(
            agent_pb.ReportEventsRequest(host_id=host, events=events), timeout=5
        )


def test_event_reported_twice_is_stored_once(cluster, admin):
    cluster.start_controller()
    ev = event("h1", 1)
    first = report(cluster.address, "h1", [ev])
    second = report(cluster.address, "h1", [ev, event("h1", 2)])
    assert list(first.acked_ids) == [ev.id]
    assert ev.id in second.acked_ids
    out = cluster.ctl("-o", "json", "events", "--host", "h1")
    stored = json.loads(out.stdout)["events"]
    assert [e["id"] for e in stored].count(ev.id) == 1
    assert [e["host_seq"] for e in stored] == ["1", "2"]
    assert [int(e["cursor"]) for e in stored] == [1, 2]


def test_bad_event_is_refused_with_field_and_stores_nothing(cluster):
    cluster.start_controller()
    bad = event("h1", 1)
    bad.kind = "not a kind"
    try:
        report(cluster.address, "h1", [event("h1", 1), bad])
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "events[1].kind" in exc.details()
    else:
        raise AssertionError("a malformed event was accepted")
    out = cluster.ctl("-o", "json", "events")
    assert json.loads(out.stdout)["events"] == []


def test_ctl_against_dead_controller_exits_3_with_one_line(cluster):
    out = cluster.ctl("--timeout", "2", "hosts")
    assert out.returncode == 3
    assert out.stderr.count("\n") == 1
    assert "controller unreachable at 127.0.0.1:" in out.stderr
    assert "Traceback" not in out.stderr


def test_ctl_host_show_unknown_exits_1(cluster):
    cluster.start_controller()
    out = cluster.ctl("host", "show", "nosuchhost")
    assert out.returncode == 1
    assert "no host 'nosuchhost'" in out.stderr
