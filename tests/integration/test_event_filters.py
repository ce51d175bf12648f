"""Events through a real controller: group filters, following from the newest, retention."""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence

import grpc
import pytest
from clusterkit import FAST_CONTROLLER, Admin

from hangwatch import pbtime
from hangwatch.ids import new_ulid
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import admin_service_pb2_grpc as admin_grpc
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster, wait_for

GROUP = {
    "name": "mail",
    "members": ["m1", "m2"],
    "mounts": ["/srv/mail"],
    "primary": "m1",
}


def report(address: str, hosts: Sequence[str]) -> None:
    """One event for each entry of `hosts`, in that order, batched as agents send them."""
    with grpc.insecure_channel(address) as channel:
        stub = agent_grpc.AgentServiceStub(channel)
        for host, run in itertools.groupby(hosts):
            now = time.time()
            events = [
                pb.Event(
                    id=new_ulid(now),
                    host_id=host,
                    host_seq=time.time_ns() + n,
                    mount="/srv/mail",
                    kind="SYNTHETIC_TEST",
                    severity=pb.SEVERITY_INFO,
                    occurred_at=pbtime.timestamp(now),
                )
                for n, _ in enumerate(run)
            ]
            for first in range(0, len(events), 1000):
                batch = events[first : first + 1000]
                request = agent_pb.ReportEventsRequest(host_id=host, events=batch)
                stub.ReportEvents(request, timeout=10)


def ctl_json(cluster: LocalCluster, *args: str) -> dict[str, list[dict[str, object]]]:
    out = cluster.ctl("-o", "json", *args)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


@pytest.fixture
def mail_cluster(cluster: LocalCluster) -> Iterator[LocalCluster]:
    cluster.controller_config = {**FAST_CONTROLLER, "groups": [GROUP]}
    cluster.start_controller()
    yield cluster


def test_events_group_lists_only_the_groups_hosts(mail_cluster: LocalCluster):
    """`events --group` returned every event (the filter was validated, never applied).
    Fails before the fix."""
    report(mail_cluster.address, ["m1", "x9", "m2", "x9", "m1"])
    events = ctl_json(mail_cluster, "events", "--group", "mail")["events"]
    assert [e["host_id"] for e in events] == ["m1", "m2", "m1"]
    unknown = mail_cluster.ctl("events", "--group", "nope")
    assert unknown.returncode == 2
    assert "filter.group: no group 'nope' (known: mail)" in unknown.stderr


def test_a_group_watch_streams_its_hosts_events_as_they_come(mail_cluster: LocalCluster):
    """A filtered stream delivers its matches among many other events, old and new."""
    report(mail_cluster.address, ["m2", *["x9"] * 30])
    with grpc.insecure_channel(mail_cluster.address) as channel:
        call = admin_grpc.AdminServiceStub(channel).WatchEvents(
            admin_pb.WatchEventsRequest(filter=admin_pb.EventFilter(group="mail")), timeout=30
        )
        stream = iter(call)
        assert next(stream).host_id == "m2"
        report(mail_cluster.address, [*["x9"] * 30, "m1", "x9", "m2"])
        assert [next(stream).host_id for _ in range(2)] == ["m1", "m2"]
        call.cancel()


def _follow(cluster: LocalCluster, *args: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    follow = subprocess.Popen(
        cluster.ctl_argv("-o", "json", "events", "--follow", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert follow.stdout is not None
        for line in follow.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return follow, lines


def test_follow_starts_after_the_newest_event_unless_from_start(mail_cluster: LocalCluster):
    """`events --follow` replayed the whole log from cursor 0; now it starts after the
    newest event, and --from-start replays. Fails before the fix."""
    report(mail_cluster.address, ["m1"] * 5)
    follow, lines = _follow(mail_cluster)
    replay, replayed = _follow(mail_cluster, "--from-start")
    try:
        # Until the follower is connected a new event may land before its start: keep
        # adding one until the first line comes.
        def first_line() -> str | None:
            report(mail_cluster.address, ["m2"])
            try:
                return lines.get(timeout=0.3)
            except queue.Empty:
                return None

        first = json.loads(str(wait_for(first_line, 30, "a followed event")))
        assert int(first["cursor"]) > 5 and first["host_id"] == "m2"
        assert int(json.loads(replayed.get(timeout=30))["cursor"]) == 1
    finally:
        for proc in (follow, replay):
            proc.terminate()
            proc.wait(10)


def test_retention_prunes_the_oldest_but_not_what_a_sink_still_owes(cluster: LocalCluster):
    """Events were never pruned. Now a controller keeps at most events.max_events (it
    prunes at start and every minute), except events a webhook sink has not yet handed
    off. Fails before the fix."""
    sink = {
        "name": "down",
        "kind": "slack",
        "url": "http://127.0.0.1:9/nobody-listens",
        "backoff_base_seconds": 60.0,
        # Every event: by default Slack is sent only what needs people, and would owe
        # these test events nothing.
        "events": "all",
    }
    cluster.controller_config = {**FAST_CONTROLLER, "events": {"max_events": 1000}}
    cluster.controller_config["webhooks"] = [sink]
    controller = cluster.start_controller()
    report(cluster.address, ["m1"] * 1200)
    controller.stop()
    controller = cluster.start_controller()
    admin = Admin(cluster.address)
    try:
        assert len(admin.events()) == 1200, "the sink still owes every event: none may go"
        controller.stop()
        cluster.controller_config = {**FAST_CONTROLLER, "events": {"max_events": 1000}}
        cluster.start_controller()
        wait_for(lambda: len(admin.events()) == 1000, 30, "pruning to 1000 events")
        assert [e.cursor for e in admin.events()] == list(range(201, 1201))
    finally:
        admin.close()
