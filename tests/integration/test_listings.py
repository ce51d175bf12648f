"""Listings page, so no large record breaks one for everyone; hangwatchctl pages through,
says when `audit` shows a window of a longer log, and escapes what would drive a
terminal. A real controller process and the real hangwatchctl."""

from __future__ import annotations

import json

import grpc
import pytest
from clusterkit import kernel_event

from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import admin_service_pb2_grpc as admin_grpc
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster

HOSTS = 12


def big_registration(host: str) -> agent_pb.RegisterRequest:
    """About 480 KB: within every limit, and twelve of them pass 4 MiB."""
    mounts = [
        pb.Mount(path=f"/srv/{i:03}/" + "m" * 1100, device="/dev/" + "d" * 1100, fs_type="xfs")
        for i in range(200)
    ]
    return agent_pb.RegisterRequest(host_id=host, boot_id="b", mounts=mounts)


def test_hosts_too_many_for_one_message_are_listed_page_by_page(cluster: LocalCluster):
    """Before: hosts whose records together passed 4 MiB made ListHosts, and so
    `hangwatchctl hosts`, fail for every user."""
    cluster.start_controller()
    with grpc.insecure_channel(cluster.address) as channel:
        agent = agent_grpc.AgentServiceStub(channel)
        for i in range(HOSTS):
            agent.Register(big_registration(f"big{i:02}"), timeout=10)
    out = cluster.ctl("-o", "json", "hosts")
    assert out.returncode == 0, out.stderr
    listed = [h["host_id"] for h in json.loads(out.stdout)["hosts"]]
    assert listed == [f"big{i:02}" for i in range(HOSTS)]
    table = cluster.ctl("hosts")
    assert table.returncode == 0, table.stderr
    assert len(table.stdout.splitlines()) == HOSTS + 1
    with grpc.insecure_channel(cluster.address) as channel:
        admin = admin_grpc.AdminServiceStub(channel)
        first = admin.ListHosts(admin_pb.ListHostsRequest(), timeout=10)
    assert 0 < len(first.hosts) < HOSTS and first.next_page_token


def test_events_too_large_together_are_listed_page_by_page(cluster: LocalCluster):
    """Before: large events together passed 4 MiB and broke an unfiltered ListEvents
    (two 2.5 MB events were enough; now each is refused at ingest)."""
    cluster.start_controller()
    lines = ["x" * 1000] * 120
    with grpc.insecure_channel(cluster.address) as channel:
        agent = agent_grpc.AgentServiceStub(channel)
        for batch in range(4):
            events = [kernel_event(batch * 10 + i + 1, lines) for i in range(10)]
            request = agent_pb.ReportEventsRequest(host_id="h1", events=events)
            agent.ReportEvents(request, timeout=10)
        out = cluster.ctl("-o", "json", "events", "--limit", "1000")
        assert out.returncode == 0, out.stderr
        listed = [int(e["host_seq"]) for e in json.loads(out.stdout)["events"]]
        assert listed == list(range(1, 41))
        huge = kernel_event(41, [])
        huge.evidence.stuck_tasks.add(pid=1, comm="dd", stack=["frame" * 1600] * 300)
        with pytest.raises(grpc.RpcError) as refused:
            request = agent_pb.ReportEventsRequest(host_id="h1", events=[huge])
            agent.ReportEvents(request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("events[0].evidence.stuck_tasks[0].stack[0]: ")


def test_audit_says_when_it_shows_a_window_of_a_longer_log(cluster: LocalCluster):
    """Before: `audit` showed the oldest 1000 rows of a longer log without saying so."""
    cluster.start_controller()
    for state in ["on", "off"] * 4:
        done = cluster.ctl("automation", state, "--reason", f"drill {state}")
        assert done.returncode == 0, done.stderr
    window = cluster.ctl("audit", "--limit", "5")
    assert window.returncode == 0, window.stderr
    assert len(window.stdout.splitlines()) == 1 + 5
    assert "showing 5 entries, seq 1-5; the log goes on to seq 8: --since 5" in window.stderr
    rest = cluster.ctl("-o", "json", "audit", "--since", "5")
    assert [int(e["seq"]) for e in json.loads(rest.stdout)["entries"]] == [6, 7, 8]
    assert rest.stderr == ""


def test_tables_escape_what_would_drive_a_terminal_and_json_stays_exact(cluster: LocalCluster):
    """Before: a summary with ESC[2J cleared the SRE's screen from `hangwatchctl events`."""
    cluster.start_controller()
    hostile = "disk gone \x1b[2J\x1b[8mhidden"
    with grpc.insecure_channel(cluster.address) as channel:
        agent_grpc.AgentServiceStub(channel).ReportEvents(
            agent_pb.ReportEventsRequest(host_id="h1", events=[kernel_event(1, summary=hostile)]),
            timeout=10,
        )
    table = cluster.ctl("events")
    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout
    assert "disk gone \\x1b[2J\\x1b[8mhidden" in table.stdout
    raw = cluster.ctl("-o", "json", "events")
    assert json.loads(raw.stdout)["events"][0]["summary"] == hostile
