"""WatchEvents consumers see every event once, in cursor order, across reconnections."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path

import grpc
from clusterkit import SYNTHETIC, Admin, burst_agent, stored_count

from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import admin_service_pb2_grpc as admin_grpc
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster, wait_for

RECONNECTIONS = 20


def watch_once(address: str, since: int, most: int, timeout: float) -> list[pb.Event]:
    """One connection: up to `most` events after `since`, then hang up mid-stream."""
    out: list[pb.Event] = []
    with grpc.insecure_channel(address) as channel:
        call = admin_grpc.AdminServiceStub(channel).WatchEvents(
            admin_pb.WatchEventsRequest(since_cursor=since), timeout=timeout
        )
        try:
            for event in call:
                out.append(event)
                if len(out) == most:
                    break
        finally:
            call.cancel()
    return out


def test_consumer_reconnecting_during_a_burst_sees_every_event_once_in_order(
    cluster: LocalCluster, admin: Admin, tmp_path: Path
) -> None:
    hosts, per_host = ("w1", "w2"), 3000
    total = per_host * len(hosts)
    cluster.start_controller()
    for host in hosts:
        cluster.start_agent(host, [tmp_path], burst_agent(per_host, 1000))

    seen: list[pb.Event] = []
    connections = during_burst = 0
    deadline = time.monotonic() + 60
    while (missing := total - sum(e.kind == SYNTHETIC for e in seen)) > 0:
        assert time.monotonic() < deadline, f"only {len(seen)} events after 60 s"
        during_burst += stored_count(cluster) < total
        since = seen[-1].cursor if seen else 0
        most = min(missing, total // (RECONNECTIONS + 8))
        seen += watch_once(cluster.address, since, most, timeout=20)
        connections += 1
    assert during_burst >= RECONNECTIONS, (connections, during_burst)

    # Every stored event, each once, gapless in cursor order: exactly what ListEvents holds.
    cursors = [e.cursor for e in seen]
    assert cursors == list(range(1, len(seen) + 1))
    assert [e.id for e in seen] == [e.id for e in admin.events()][: len(seen)]
    synthetic = [e.id for e in seen if e.kind == SYNTHETIC]
    assert len(synthetic) == len(set(synthetic)) == total


def read_lines(stream: subprocess.Popen[str], into: queue.Queue[str]) -> None:
    assert stream.stdout is not None
    for line in stream.stdout:
        into.put(line)


def test_ctl_follow_prints_ndjson_with_cursors_and_resumes_after_a_controller_crash(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    burst = 1500
    controller = cluster.start_controller()
    follow = subprocess.Popen(
        cluster.ctl_argv("-o", "json", "events", "--follow"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(follow, lines), daemon=True).start()
    try:
        cluster.start_agent("f1", [tmp_path], burst_agent(burst, 500))
        events: list[dict[str, object]] = []

        def synthetic_seen() -> int:
            while not lines.empty():
                events.append(json.loads(lines.get()))
            return sum(e["kind"] == SYNTHETIC for e in events)

        wait_for(lambda: synthetic_seen() >= burst // 3, 30, f"{burst // 3} followed events")
        controller.kill()
        cluster.start_controller()
        wait_for(lambda: synthetic_seen() >= burst, 30, f"{burst} followed events")
        assert follow.poll() is None, "hangwatchctl gave up on the restarted controller"
    finally:
        follow.terminate()
        follow.wait(10)
    assert follow.stderr is not None
    stderr = follow.stderr.read()
    assert "resuming after cursor" in stderr
    cursors = [int(str(e["cursor"])) for e in events]
    assert cursors == list(range(1, len(cursors) + 1))
    ids = [e["id"] for e in events if e["kind"] == SYNTHETIC]
    assert len(ids) == len(set(ids)) == burst
