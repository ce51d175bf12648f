"""Durable event ingest at the controller, and agent-to-watcher latency.

Run from anywhere: `python bench/bench_ingest.py [--clients 50] [--batches 20]`.

1. Throughput: `--clients` concurrent clients (one channel each, as agents have)
   send acknowledged ReportEvents batches over real gRPC to a real controller
   process; an event counts once the controller acknowledged it, which it does
   after its SQLite commit (synchronous=FULL). Target: 5 000 events/s or more.
2. Latency: a real agent emits synthetic events at `--rate` per second through its
   spool and reporter; a WatchEvents consumer stamps each event on arrival. The
   latency is arrival minus the event's occurred_at (stamped on the agent when it
   made the event; same machine, same clock). Target: p99 of 100 ms or less.

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, machine, percentile

from clusterkit import SYNTHETIC, stored_count  # isort: skip (common sets sys.path)

import grpc

from hangwatch import pbtime
from hangwatch.grpcopts import channel_options
from hangwatch.ids import new_ulid
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import admin_service_pb2_grpc as admin_grpc
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster, wait_for

TARGET_EVENTS_PER_SECOND = 5000.0
TARGET_P99_SECONDS = 0.100


def batches_for(host: str, batches: int, size: int) -> list[agent_pb.ReportEventsRequest]:
    """A client's requests, made before the clock starts (agents have them queued)."""
    out, seq, now = [], 0, time.time()
    for _ in range(batches):
        request = agent_pb.ReportEventsRequest(host_id=host)
        for _ in range(size):
            seq += 1
            request.events.append(
                pb.Event(
                    id=new_ulid(now),
                    host_id=host,
                    host_seq=seq,
                    mount="/srv/mail",
                    kind=SYNTHETIC,
                    severity=pb.SEVERITY_INFO,
                    occurred_at=pbtime.timestamp(now),
                    summary=f"bench event {seq}",
                    evidence=pb.Evidence(attributes={"source": "bench", "n": str(seq)}),
                )
            )
        out.append(request)
    return out


async def client(address: str, requests: list[agent_pb.ReportEventsRequest]) -> int:
    acked = 0
    async with grpc.aio.insecure_channel(address, options=channel_options()) as channel:
        stub = agent_grpc.AgentServiceStub(channel)
        await channel.channel_ready()
        for request in requests:
            response = await stub.ReportEvents(request, timeout=60)
            acked += len(response.acked_ids)
    return acked


async def ingest(address: str, clients: int, batches: int, size: int) -> tuple[int, float]:
    loads = [batches_for(f"bench-{i:02d}", batches, size) for i in range(clients)]
    start = time.perf_counter()
    acked = await asyncio.gather(*(client(address, load) for load in loads))
    return sum(acked), time.perf_counter() - start


def bench_throughput(workdir: Path, clients: int, batches: int, size: int) -> float:
    cluster = LocalCluster(workdir / "throughput")
    cluster.workdir.mkdir()
    try:
        cluster.start_controller()
        acked, elapsed = asyncio.run(ingest(cluster.address, clients, batches, size))
        total = clients * batches * size
        if acked != total or stored_count(cluster) != total:
            raise SystemExit(f"sent {total}, acknowledged {acked}, stored {stored_count(cluster)}")
    finally:
        cluster.stop()
    rate = acked / elapsed
    print(
        f"ingest: {acked:,} events from {clients} clients in batches of {size}: "
        f"{elapsed:.2f} s, {rate:,.0f} events/s durable"
    )
    return rate


def watch(address: str, expect: int, arrivals: list[tuple[float, pb.Event]]) -> None:
    """Consumes WatchEvents until `expect` synthetic events arrived, stamping each."""
    with grpc.insecure_channel(address) as channel:
        stream = admin_grpc.AdminServiceStub(channel).WatchEvents(
            admin_pb.WatchEventsRequest(filter=admin_pb.EventFilter(kind=SYNTHETIC)), timeout=300
        )
        for event in stream:
            arrivals.append((time.time(), event))
            if len(arrivals) == expect:
                stream.cancel()
                return


def bench_latency(workdir: Path, rate: float, seconds: float) -> float:
    cluster = LocalCluster(workdir / "latency")
    cluster.workdir.mkdir()
    count = int(rate * seconds)
    arrivals: list[tuple[float, pb.Event]] = []
    try:
        cluster.start_controller()
        consumer = threading.Thread(target=watch, args=(cluster.address, count, arrivals))
        consumer.start()
        cluster.start_agent(
            "bench-agent",
            [cluster.workdir],
            {
                "kmsg": {"enabled": False},
                "testing": {"synthetic_events": count, "synthetic_rate_per_second": rate},
            },
        )
        wait_for(lambda: not consumer.is_alive(), seconds * 3 + 30, f"{count} watched events")
    finally:
        cluster.stop()
    made = [pbtime.seconds(e.occurred_at) for _, e in arrivals]
    lat = sorted(at - pbtime.seconds(e.occurred_at) for at, e in arrivals)
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    print(
        f"latency: {len(lat):,} events at {len(made) / (max(made) - min(made)):,.0f}/s "
        f"(asked {rate:.0f}/s), agent occurred_at -> WatchEvents consumer: "
        f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms, "
        f"mean {statistics.fmean(lat) * 1000:.1f} ms"
    )
    return p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--batches", type=int, default=20, help="batches per client")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rate", type=float, default=500.0, help="agent events per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the agent burst")
    args = parser.parse_args()
    # The controller and agent processes import from this tree too.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    print(machine())
    with tempfile.TemporaryDirectory(prefix="hangwatch-bench-") as tmp:
        rate = bench_throughput(Path(tmp), args.clients, args.batches, args.batch_size)
        p99 = bench_latency(Path(tmp), args.rate, args.seconds)
    missed = []
    if rate < TARGET_EVENTS_PER_SECOND:
        missed.append(f"ingest {rate:,.0f} events/s < {TARGET_EVENTS_PER_SECOND:,.0f}")
    if p99 > TARGET_P99_SECONDS:
        missed.append(f"p99 {p99 * 1000:.1f} ms > {TARGET_P99_SECONDS * 1000:.0f} ms")
    print("targets: " + ("; ".join(missed) if missed else "met"))
    if missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
