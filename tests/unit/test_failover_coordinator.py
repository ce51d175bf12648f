"""One coordinator pass over a real store: what it approves, and when, with no agents
(the commands it queues stay in the store)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from controller.config import ControllerConfig, FailoverSettings, GroupSettings
from controller.failover.commandhub import CommandHub
from controller.failover.coordinator import Coordinator
from controller.failover.ledger import Ledger, timeouts
from controller.failover.model import FailoverState
from controller.failover.snapshot import Snapshots
from controller.incidents.tracker import IncidentTracker
from controller.notify.announce import Announcer
from controller.notify.eventbus import CursorBus
from controller.store.dbthread import DbThread
from controller.store.sqlite.store import SQLiteStore
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb

MOUNT = "/srv/mail"


def report(store: SQLiteStore, host: str, state: pb.HealthState.ValueType) -> None:
    """`host` registers and heartbeats with its mount in `state`, as an agent would."""
    store.register_host(
        agent_pb.RegisterRequest(host_id=host, boot_id="b", mounts=[pb.Mount(path=MOUNT)]),
        time.time(),
    )
    heartbeat = agent_pb.HeartbeatRequest(
        host_id=host, boot_id="b", mounts=[pb.MountHealth(mount=MOUNT, state=state)]
    )
    assert store.record_heartbeat(heartbeat, time.time())


Body = Callable[[SQLiteStore, Coordinator, Ledger], Awaitable[None]]


def with_coordinator(tmp_path: Path, config: ControllerConfig, body: Body) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "c.db")
        db = DbThread()
        store.seed_groups([(g.name, g.primary) for g in config.groups])
        hub = CommandHub(lambda host: db.run(store.pending_commands, host))
        ledger = Ledger(store, db, hub, timeouts(config))
        incidents = IncidentTracker(
            store, db, config, Announcer(store, db, CursorBus(0), lambda _: None)
        )
        snapshots = Snapshots(store, db, config)
        coordinator = Coordinator(store, db, config, ledger, snapshots, incidents)
        try:
            await body(store, coordinator, ledger)
        finally:
            db.shutdown()
            store.close()

    asyncio.run(main())


def test_six_groups_locking_in_one_pass_get_one_approval_with_max_concurrent_1(tmp_path):
    """One shared SAN freezing locks six groups in the same pass: the storm limit is
    checked for each approval against those approved before it. Fails on the old
    code, which approved all six from one snapshot."""
    config = ControllerConfig(
        failover=FailoverSettings(max_concurrent=1, max_group_percent=100.0),
        groups=[
            GroupSettings(
                name=f"mail-{i}",
                members=[f"p{i}", f"s{i}"],
                mounts=[MOUNT],
                mode="auto",
                primary=f"p{i}",
            )
            for i in range(1, 7)
        ],
    )

    async def body(store: SQLiteStore, coordinator: Coordinator, ledger: Ledger) -> None:
        for i in range(1, 7):
            report(store, f"p{i}", pb.HEALTH_STATE_LOCKED)
            report(store, f"s{i}", pb.HEALTH_STATE_OK)
        await coordinator.step()
        states = sorted(f.state.value for f in store.list_failovers())
        assert states == ["FENCING"] + ["PROPOSED"] * 5
        held = [f for f in store.list_failovers() if f.state is FailoverState.PROPOSED]
        assert all("1 failover(s) already in progress" in f.steps[-1].detail for f in held)
        await coordinator.step()  # the first is still running: nothing more is approved
        assert sorted(f.state.value for f in store.list_failovers()).count("PROPOSED") == 5

    with_coordinator(tmp_path, config, body)


def test_the_pre_failover_hooks_run_time_is_not_taken_out_of_the_demote_deadline(tmp_path):
    """A real pre-failover hook that takes 0.5 s and allows the failover: the demote
    step starts after the approval and its deadline counts from there. Fails on the
    old code, which timestamped FENCING at the pass's start, before APPROVED."""
    hook = tmp_path / "pre-failover"
    hook.write_text("#!/bin/sh\nsleep 0.5\n")
    hook.chmod(0o755)
    config = ControllerConfig(
        failover=FailoverSettings(pre_failover_hook=str(hook), demote_timeout_seconds=10.0),
        groups=[
            GroupSettings(
                name="mail",
                members=["a", "b"],
                mounts=[MOUNT],
                mode="auto",
                primary="a",
                frozen_primary="wait",  # the whole demote deadline is at stake here
            )
        ],
    )

    async def body(store: SQLiteStore, coordinator: Coordinator, ledger: Ledger) -> None:
        report(store, "a", pb.HEALTH_STATE_LOCKED)
        report(store, "b", pb.HEALTH_STATE_OK)
        await coordinator.step()
        (f,) = store.list_failovers()
        proposed, approved, fencing = f.steps[:3]
        assert [s.state for s in (proposed, approved, fencing)] == [
            FailoverState.PROPOSED,
            FailoverState.APPROVED,
            FailoverState.FENCING,
        ]
        assert approved.at - proposed.at >= 0.5
        assert fencing.at >= approved.at
        assert f.deadline == fencing.at + 10.0

    with_coordinator(tmp_path, config, body)
