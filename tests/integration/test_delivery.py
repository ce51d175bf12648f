"""docs/design.md#3-nothing-lost-nothing-doubled under crashes, each host in order.

Real processes on loopback: agents emit synthetic bursts through their real spool and
reporter while the controller or an agent is SIGKILLed and restarted.
"""

from __future__ import annotations

import signal
from collections import defaultdict
from pathlib import Path

from clusterkit import (
    SYNTHETIC,
    Admin,
    burst_agent,
    spooled_ids,
    stored_count,
    synthetic_n,
)

from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster, wait_for

TOTAL = 10_000
HOSTS = ("d1", "d2", "d3")
CONTROLLER_CRASHES = 5
# Per agent: about 9 s for its third of TOTAL, long enough for five crashes.
BURST_RATE = 400.0
# Events the controller must have ingested since it (re)started before the next crash.
PROGRESS = 400


def check_per_host_order(events: list[pb.Event]) -> dict[str, list[pb.Event]]:
    """Asserts that, by cursor, each host's host_seq only increases; returns them by host."""
    by_host: dict[str, list[pb.Event]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e.cursor):
        by_host[event.host_id].append(event)
    for host, own in by_host.items():
        seqs = [e.host_seq for e in own]
        bad = next((i for i in range(1, len(seqs)) if seqs[i] <= seqs[i - 1]), None)
        assert bad is None, f"{host}: host_seq {seqs[bad]} after {seqs[bad - 1]} (by cursor)"
    return by_host


def wait_spools_drained(admin: Admin, hosts: tuple[str, ...]) -> None:
    """Every acknowledged event left the agents' memory and spool (heartbeat spool_depth)."""

    def drained() -> bool:
        known = admin.hosts()
        return all(h in known and known[h].spool_depth == 0 for h in hosts)

    wait_for(drained, 20, f"empty spools on {', '.join(hosts)}")


def test_burst_from_three_agents_survives_five_controller_crashes(
    cluster: LocalCluster, admin: Admin, tmp_path: Path
) -> None:
    controller = cluster.start_controller()
    shares = {h: TOTAL // len(HOSTS) + (i < TOTAL % len(HOSTS)) for i, h in enumerate(HOSTS)}
    for host, share in shares.items():
        cluster.start_agent(host, [tmp_path], burst_agent(share, BURST_RATE))

    stored_at_crash = []
    for _ in range(CONTROLLER_CRASHES):
        floor = stored_count(cluster) + PROGRESS
        wait_for(lambda f=floor: stored_count(cluster) >= f, 30, f"{floor} stored events")
        stored_at_crash.append(stored_count(cluster))
        controller.kill()
        controller = cluster.start_controller()
    assert stored_at_crash[-1] < TOTAL, f"the crashes came after the burst: {stored_at_crash}"

    wait_for(lambda: stored_count(cluster) >= TOTAL, 60, f"{TOTAL} stored events")
    events = admin.events(kind=SYNTHETIC)
    ids = [e.id for e in events]
    assert len(ids) == TOTAL
    assert len(set(ids)) == TOTAL
    by_host = check_per_host_order(events)
    assert {h: len(own) for h, own in by_host.items()} == shares
    for host, own in by_host.items():
        assert sorted(synthetic_n(e) for e in own) == list(range(1, shares[host] + 1)), host
    wait_spools_drained(admin, HOSTS)
    assert stored_count(cluster) == TOTAL


def test_agent_killed_mid_burst_delivers_everything_it_spooled_once(
    cluster: LocalCluster, admin: Admin, tmp_path: Path
) -> None:
    burst = 6000
    state = tmp_path / "state-k1"
    controller = cluster.start_controller()
    agent = cluster.start_agent("k1", [tmp_path], burst_agent(burst, 1500), state_dir=state)
    wait_for(lambda: stored_count(cluster) >= 1000, 30, "1000 stored events")

    # A frozen controller holds one batch in flight (it commits it on SIGCONT, and its
    # acknowledgement goes to a dead agent) while the agent spools on.
    controller.signal(signal.SIGSTOP)
    try:
        wait_for(lambda: len(spooled_ids(state)) >= 500, 20, "500 spooled events")
        agent.kill_group()  # the agent and its spool worker, mid-burst
    finally:
        controller.signal(signal.SIGCONT)
    spooled = spooled_ids(state)
    delivered = {e.id for e in admin.events(kind=SYNTHETIC)}
    assert len(delivered) < burst, "the kill came after the burst"
    assert set(spooled) - delivered, "nothing was left to replay"

    cluster.start_agent("k1", [tmp_path], burst_agent(0, 1), state_dir=state)
    wait_for(
        lambda: set(spooled) <= {e.id for e in admin.events(kind=SYNTHETIC)},
        30,
        "every spooled event at the controller",
    )
    wait_spools_drained(admin, ("k1",))
    events = admin.events(kind=SYNTHETIC)
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids))
    check_per_host_order(events)
    # What arrived is the burst's first events with no hole and no repeat: every event
    # spooled (or acknowledged) before the kill, and none twice.
    numbers = sorted(synthetic_n(e) for e in events)
    assert numbers == list(range(1, len(numbers) + 1))
