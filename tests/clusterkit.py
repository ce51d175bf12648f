"""Shared by tests that run a controller and agents as processes: fast settings, a client."""

from __future__ import annotations

import sqlite3
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import grpc
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from hangwatch import pbtime
from hangwatch.ids import new_ulid
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import admin_service_pb2_grpc as admin_grpc
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster

# Fast liveness so tests see STALE/UNREACHABLE in seconds.
FAST_CONTROLLER = {
    "liveness": {
        "heartbeat_interval_seconds": 0.3,
        "stale_after_seconds": 1.0,
        "unreachable_after_seconds": 2.5,
        # FAST_AGENT's reconnect.max_backoff_seconds.
        "agent_max_backoff_seconds": 1.0,
    },
}
FAST_AGENT = {
    "heartbeat": {"interval_seconds": 0.3},
    "reconnect": {"initial_backoff_seconds": 0.1, "max_backoff_seconds": 1.0},
}
SYNTHETIC = "SYNTHETIC_TEST"


def kernel_event(
    seq: int, lines: Sequence[str] = (), summary: str = "", host: str = "h1"
) -> pb.Event:
    """A KERNEL_HUNG_TASK event as an agent reports one, `lines` of kernel log its evidence."""
    event = pb.Event(
        id=new_ulid(),
        host_id=host,
        host_seq=seq,
        kind="KERNEL_HUNG_TASK",
        severity=pb.SEVERITY_ERROR,
        occurred_at=pbtime.timestamp(time.time()),
        summary=summary or f"hung task report {seq}",
    )
    event.evidence.kernel_lines.extend(lines)
    event.evidence.attributes["source"] = "kmsg"
    return event


def burst_agent(events: int, rate: float) -> dict[str, object]:
    """FAST_AGENT emitting `events` synthetic events at `rate` per second from its start."""
    return {
        **FAST_AGENT,
        "testing": {"synthetic_events": events, "synthetic_rate_per_second": rate},
    }


def synthetic_n(event: pb.Event) -> int:
    """The position of a synthetic event in its agent's burst (1-based)."""
    return int(event.evidence.attributes["n"])


def stored_count(cluster: LocalCluster, kind: str = SYNTHETIC) -> int:
    """Events of `kind` in the controller's SQLite file (a cheap progress probe)."""
    path = cluster.workdir / "controller-data" / "controller.db"
    if not path.exists():
        return 0
    db = sqlite3.connect(path, timeout=5)
    try:
        return int(db.execute("SELECT count(*) FROM events WHERE kind = ?", (kind,)).fetchone()[0])
    except sqlite3.OperationalError:  # not migrated yet
        return 0
    finally:
        db.close()


def spooled_ids(state_dir: Path) -> list[str]:
    """Ids in an agent's spool file (read while no spool worker writes to it)."""
    db = sqlite3.connect(state_dir / "spool.db", timeout=5)
    try:
        return [i for (i,) in db.execute("SELECT id FROM spool ORDER BY host_seq")]
    finally:
        db.close()


def scrape(port: int) -> dict[str, Metric]:
    """The metrics a program serves on 127.0.0.1:`port`, by name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {m.name: m for m in text_string_to_metric_families(text)}


class Admin:
    """An in-process AdminService client, for polling faster than spawning hangwatchctl."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self.stub = admin_grpc.AdminServiceStub(self._channel)

    def hosts(self) -> dict[str, admin_pb.Host]:
        try:
            response = self.stub.ListHosts(admin_pb.ListHostsRequest(), timeout=2)
        except grpc.RpcError:
            return {}
        return {h.host_id: h for h in response.hosts}

    def events(self, kind: str = "", since: int = 0) -> list[pb.Event]:
        """Every stored event after cursor `since` (of `kind`, if given), by cursor."""
        out: list[pb.Event] = []
        request = admin_pb.ListEventsRequest(
            filter=admin_pb.EventFilter(kind=kind), since_cursor=since, page_size=1000
        )
        while True:
            response = self.stub.ListEvents(request, timeout=10)
            out.extend(response.events)
            if not response.next_page_token:
                return out
            request.page_token = response.next_page_token

    def close(self) -> None:
        self._channel.close()
