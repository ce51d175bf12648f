"""Large events reach the controller: batches bounded by bytes, an oversized event cut
to fit and marked, never resent as it was, also when it comes back from the spool.

The real reporter, outbox and spool against a real controller process, and a real
agent process replaying a spool that an agent without these limits left behind.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from clusterkit import FAST_AGENT, Admin, kernel_event

from agent.config import AgentConfig, ControllerSettings, ReconnectSettings
from agent.events import droppable
from agent.link.channel import ControllerLink
from agent.link.fit import TRUNCATED
from agent.link.outbox import Outbox
from agent.link.reporter import Reporter
from agent.workers.spool import Spool
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster, wait_for

HOST = "h1"
# Kernel-log events with long excerpts: 500 of them come to about 4.5 MB.
EXCERPT = [f"[{i}] " + "call trace line of a hung task report " * 6 for i in range(40)]


def event(seq: int, lines: list[str] = EXCERPT) -> pb.Event:
    return kernel_event(seq, lines, host=HOST)


def oversized(seq: int) -> pb.Event:
    """About 400 KB: more than the controller takes in one event."""
    return event(seq, [f"[{i}] " + "x" * 4000 for i in range(100)])


def deliver(address: str, state: Path, events: list[pb.Event]) -> tuple[Outbox, Reporter]:
    """Sends `events` with the agent's reporter until its outbox is empty (or 60 s)."""

    async def scenario() -> tuple[Outbox, Reporter]:
        config = AgentConfig(
            host_id=HOST,
            state_dir=str(state),
            controller=ControllerSettings(address=address, insecure=True),
            reconnect=ReconnectSettings(initial_backoff_seconds=0.05, max_backoff_seconds=0.2),
        )
        link = ControllerLink(config)
        outbox = Outbox(10_000, droppable)
        spool = Spool(state / "spool.db", 10_000)
        await spool.start()
        for e in events:
            outbox.put(e)
        reporter = Reporter(config, link, outbox, spool)
        ready = asyncio.Event()
        ready.set()
        task = asyncio.create_task(reporter.run(ready))
        deadline = time.monotonic() + 60
        while len(outbox) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()
        await spool.close()
        await link.close()
        return outbox, reporter

    return asyncio.run(scenario())


def test_a_burst_of_large_events_goes_in_batches_under_the_message_limit(cluster, admin: Admin):
    """Before: batches were bounded by count only; 500 such events made one 4.5 MB batch,
    refused RESOURCE_EXHAUSTED and resent for ever: delivery from the host stopped."""
    cluster.start_controller()
    events = [event(seq) for seq in range(1, 501)]
    assert sum(e.ByteSize() for e in events) > 4 * 1024 * 1024
    outbox, reporter = deliver(cluster.address, cluster.workdir, events)
    assert len(outbox) == 0 and reporter.refused == 0
    assert [e.host_seq for e in admin.events()] == list(range(1, 501))


def test_an_oversized_event_is_delivered_cut_down_and_does_not_hold_back_the_rest(
    cluster, admin: Admin
):
    """Before: the controller refused it; resent as it was, then dropped."""
    cluster.start_controller()
    events = [event(1), oversized(2), event(3)]
    outbox, reporter = deliver(cluster.address, cluster.workdir, events)
    assert len(outbox) == 0 and reporter.refused == 0
    stored = admin.events()
    assert [e.host_seq for e in stored] == [1, 2, 3]
    assert stored[1].evidence.attributes[TRUNCATED].startswith(f"{events[1].ByteSize()} bytes")
    assert stored[1].evidence.kernel_lines[-1] == events[1].evidence.kernel_lines[-1]


def spool_left_behind(state: Path, events: list[pb.Event]) -> None:
    """A spool holding `events`, as an agent killed before sending them leaves it."""

    async def write() -> None:
        spool = Spool(state / "spool.db", 10_000)
        await spool.start()
        for e in events:
            spool.append(e)
        assert await spool.close()

    asyncio.run(write())


def test_oversized_events_from_the_spool_are_cut_down_after_a_restart(
    cluster: LocalCluster, admin: Admin, tmp_path: Path
):
    """Before: a restarted agent replayed its spool in the same oversized batch, refused
    again, for ever."""
    state = tmp_path / "state"
    state.mkdir()
    events = [event(seq) for seq in range(1, 400)] + [oversized(400), event(401)]
    spool_left_behind(state, events)
    cluster.start_controller()
    cluster.start_agent(HOST, [tmp_path], FAST_AGENT, state_dir=state)
    kind = events[0].kind
    wait_for(lambda: len(admin.events(kind)) == 401, 60, "every spooled event at the controller")
    stored = admin.events(kind)
    assert [e.host_seq for e in stored] == list(range(1, 402))
    assert stored[399].evidence.attributes[TRUNCATED].startswith(f"{events[399].ByteSize()}")
