"""A 30 s network cut between an agent (in its own network namespace) and the controller.

Plaintext gRPC is only allowed on loopback, and the test keeps that rule rather than
bending it: the agent talks to a relay on its namespace's loopback, the relay crosses
the veth pair to a second relay on this side's end of it, which hands the bytes to
the controller on 127.0.0.1. Cutting the veth cuts the agent off its controller.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from clusterkit import SYNTHETIC, Admin, burst_agent, spooled_ids, stored_count, synthetic_n
from netns import start_relays, veth_namespace
from rootreq import require_root

from hangwatch import pbtime
from lab.localcluster import LocalCluster, wait_for

OUTAGE = 30.0
BURST, RATE = 4000, 100.0  # about 45 s of events: before, through and after the cut
# The agent's loop runs every 10 ms in the burst; a pause this long means it blocked.
MAX_GAP = 1.0


def test_agent_cut_off_for_30s_delivers_everything_once_and_keeps_running(
    cluster: LocalCluster, admin: Admin, tmp_path: Path
) -> None:
    require_root(["ip"])
    state = tmp_path / "state-n1"
    with veth_namespace() as ns:
        try:
            cluster.start_controller()
            port = start_relays(cluster, ns)
            cluster.start_agent(
                "n1",
                [tmp_path],
                burst_agent(BURST, RATE),
                state_dir=state,
                prefix=ns.prefix,
                controller=f"127.0.0.1:{port}",
            )
            wait_for(lambda: stored_count(cluster) >= 200, 30, "200 events through the relays")

            ns.set_link(up=False)
            cut_at = time.monotonic()
            try:
                wait_for(lambda: time.monotonic() - cut_at > 2, 3, "in-flight calls to settle")
                stored_during, spooled_during = stored_count(cluster), len(spooled_ids(state))
                wait_for(lambda: time.monotonic() - cut_at > OUTAGE, OUTAGE + 1, "the outage")
                assert stored_count(cluster) == stored_during, "events crossed a cut link"
                # The agent went on making and spooling events all along.
                assert len(spooled_ids(state)) >= spooled_during + 0.5 * RATE * (OUTAGE - 2)
            finally:
                ns.set_link(up=True)
            back_at = time.time()

            wait_for(lambda: stored_count(cluster) >= BURST, 60, f"all {BURST} events")
            wait_for(lambda: admin.hosts()["n1"].spool_depth == 0, 20, "the agent's spool to drain")
        finally:
            for proc in cluster.procs:
                if proc.name in ("agent-n1", "relay-ns", "relay-host"):
                    proc.kill_group()

    events = admin.events(kind=SYNTHETIC)
    assert len(events) == BURST
    assert len({e.id for e in events}) == BURST
    assert sorted(synthetic_n(e) for e in events) == list(range(1, BURST + 1))
    seqs = [e.host_seq for e in events]  # by cursor
    assert seqs == sorted(seqs) and len(set(seqs)) == BURST

    # The agent's loop never stalled: its events kept their 10 ms cadence through the cut
    # (and past it), and no source reported a stall.
    made = sorted(pbtime.seconds(e.occurred_at) for e in events)
    gaps = [b - a for a, b in itertools.pairwise(made)]
    assert max(gaps) < MAX_GAP, f"the agent paused {max(gaps):.2f}s"
    assert made[-1] > back_at, "the burst ended before the link came back"
    assert not [e for e in admin.events(kind="SOURCE_STALLED") if e.host_id == "n1"]
    host = admin.hosts()["n1"]
    assert host.sources and all(s.running for s in host.sources)
