"""Carries out failovers: one loop that snapshots the cluster, decides, and drives.

Each pass builds an immutable `ClusterState` from the store, asks the pure engine
what to propose, and moves every open failover one step with the pure state
machine. Every step is persisted (with its commands and the group's epoch, in one
transaction) before anything is sent, so a controller killed at any point
resumes where the store says it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable

from controller.config import ControllerConfig
from controller.failover import engine, machine
from controller.failover.commandhub import CommandHub
from controller.failover.fencing import fence
from controller.failover.liveness import liveness
from controller.failover.machine import (
    BlockAuto,
    CommandOutcome,
    Failover,
    MarkNeedsClear,
    RunFence,
    SendCommand,
    SetEpoch,
    SetPrimary,
    Timeouts,
)
from controller.failover.model import (
    ClusterState,
    FailoverView,
    FState,
    GroupView,
    HostView,
    Policy,
)
from controller.store.dbthread import DbThread
from controller.store.interface import FailoverCommit, GroupBusy, StaleFailover, Store, StoreFull
from hangwatch import pbtime
from hangwatch.executables import run_executable
from hangwatch.ids import new_ulid
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

SYSTEM = "hangwatch"
# Failovers older than this no longer count for the group-percent window.
RECENT_LIMIT = 200

AdvisoryLookup = Callable[[pb.Inventory, list[pb.Mount]], tuple[str, ...]]


def _no_advisories(_: pb.Inventory, __: list[pb.Mount]) -> tuple[str, ...]:
    return ()


class Coordinator:
    def __init__(
        self,
        store: Store,
        db: DbThread,
        config: ControllerConfig,
        hub: CommandHub,
        advisories: AdvisoryLookup = _no_advisories,
    ) -> None:
        self._store = store
        self._db = db
        self._config = config
        self._hub = hub
        self._advisories = advisories
        fo = config.failover
        self.timeouts = Timeouts(
            demote=fo.demote_timeout_seconds,
            fence=max((f.timeout_seconds for f in config.fencing), default=60.0) + 5.0,
            promote=fo.promote_timeout_seconds,
            anti_flap=fo.anti_flap_seconds,
        )
        self.policy = Policy(
            anti_flap_seconds=fo.anti_flap_seconds,
            max_concurrent=fo.max_concurrent,
            max_group_percent=fo.max_group_percent,
            window_seconds=fo.window_seconds,
        )
        self._wake = asyncio.Event()
        self._fencing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        """Something changed (a command result, an approval): run a pass now."""
        self._wake.set()

    async def run(self) -> None:
        await self._db.run(
            self._store.seed_groups, [(g.name, g.primary) for g in self._config.groups]
        )
        while True:
            try:
                await self.step()
            except StoreFull:
                pass  # logged once by the store; the next pass tries again
            except Exception:
                log.exception("failover pass failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._config.failover.interval_seconds)

    # The snapshot.

    def snapshot(self, now: float) -> tuple[ClusterState, list[Failover]]:
        """The cluster as the engine sees it, and the open failovers (store thread)."""
        store, live = self._store, self._config.liveness
        windows = store.list_maintenance(now)
        hosts_in_maintenance = {w.target for w in windows if w.scope == "host"}
        groups_in_maintenance = {w.target for w in windows if w.scope == "group"}
        hosts = {}
        for record in store.list_hosts():
            hb = record.last_heartbeat
            health = {
                m.mount: pb.HealthState.Name(m.state).removeprefix("HEALTH_STATE_")
                for m in (hb.mounts if hb else [])
            }
            latency = {
                m.mount: pbtime.seconds(m.last_probe_latency) for m in (hb.mounts if hb else [])
            }
            age = None if record.last_heartbeat_at is None else now - record.last_heartbeat_at
            hosts[record.host_id] = HostView(
                host_id=record.host_id,
                liveness=pb.Liveness.Name(
                    liveness(
                        record.last_heartbeat_at,
                        now,
                        live.stale_after_seconds,
                        live.unreachable_after_seconds,
                    )
                ).removeprefix("LIVENESS_"),
                heartbeat_age=age,
                mounts=health,
                probe_latency=latency,
                maintenance=record.host_id in hosts_in_maintenance,
                advisories=self._advisories(
                    record.registration.inventory, list(record.registration.mounts)
                ),
                needs_clear=bool(record.needs_clear),
                kernel=record.registration.inventory.kernel_release,
            )
        rows = store.groups()
        groups = tuple(
            GroupView(
                name=g.name,
                members=tuple(g.members),
                mounts=tuple(g.mounts),
                mode=g.mode,
                primary=rows[g.name].primary,
                epoch=rows[g.name].epoch,
                auto_blocked_until=rows[g.name].auto_blocked_until,
                maintenance=g.name in groups_in_maintenance,
            )
            for g in self._config.groups
            if g.name in rows
        )
        recent = store.list_failovers(limit=RECENT_LIMIT)
        state = ClusterState(
            now=now,
            groups=groups,
            hosts=hosts,
            failovers=tuple(
                FailoverView(
                    f.id,
                    f.group,
                    f.state,
                    f.created_at,
                    f.auto,
                    waiting=f.state is FState.APPROVED
                    and f.not_before is not None
                    and f.not_before > now,
                )
                for f in recent
            ),
            automation=store.get_setting("automation", "on") == "on",
            cluster_maintenance=any(w.scope == "cluster" for w in windows),
            policy=self.policy,
        )
        return state, [f for f in recent if f.state.active]

    # One pass.

    async def step(self) -> None:
        async with self._lock:
            now = time.time()
            state, open_failovers = await self._db.run(self.snapshot, now)
            for f in open_failovers:
                await self._drive(f, state)
            for decision in engine.decide(state):
                if isinstance(decision, engine.Proposal):
                    await self._propose(decision, state)
                elif isinstance(decision, engine.Preempt):
                    await self._preempt(decision, state.now)
            await self._db.run(self.close_served_incidents, state)

    async def _propose(self, p: engine.Proposal, state: ClusterState) -> None:
        now = state.now
        f = Failover(
            id=new_ulid(now),
            group=p.group,
            state=FState.PROPOSED,
            trigger=p.trigger,
            from_host=p.from_host,
            to_host=p.to_host,
            reason=p.reason,
            proposed_by=SYSTEM,
            created_at=now,
            candidates=p.candidates,
            steps=(
                machine.Step(
                    FState.PROPOSED,
                    now,
                    SYSTEM,
                    p.reason + ("" if p.auto_approve else "; needs approval: " + "; ".join(p.hold)),
                ),
            ),
        )
        incident = await self._db.run(self._store.open_incident_for, p.group)
        if incident is None:
            incident_id = new_ulid(now)
            await self._db.run(
                self._store.open_incident, incident_id, p.group, p.from_host, now, p.reason
            )
        else:
            incident_id = incident.id
        f = dataclasses.replace(f, incident_id=incident_id)
        try:
            await self.commit(
                FailoverCommit(
                    f,
                    audit=(
                        SYSTEM,
                        "system",
                        "propose",
                        f"{f.id}: {p.from_host} -> {p.to_host or '(none)'}: {p.reason}",
                    ),
                )
            )
        except GroupBusy:
            return  # a person's proposal for the group got there first
        log.warning(
            "proposed failover %s of %s: %s -> %s (%s)",
            f.id,
            p.group,
            p.from_host,
            p.to_host or "none",
            p.reason,
        )
        if p.auto_approve and await self._pre_failover_allows(f):
            approved = machine.approve(f, SYSTEM, time.time(), auto=True)
            await self.commit(
                FailoverCommit(
                    approved,
                    audit=(SYSTEM, "system", "approve", f"{f.id}: approved by policy (auto mode)"),
                )
            )
            await self._drive(approved, state)

    async def _preempt(self, p: engine.Preempt, now: float) -> None:
        """Cancels a scheduled switchover so the next pass can propose a failover."""
        f = await self._db.run(self._store.get_failover, p.failover_id)
        if f is None or f.state is not FState.APPROVED:
            return
        cancelled = machine.cancel(f, SYSTEM, p.reason, now)
        try:
            await self.commit(
                FailoverCommit(cancelled, audit=(SYSTEM, "system", "cancel", f"{f.id}: {p.reason}"))
            )
        except StaleFailover:
            return  # it started meanwhile: it is no longer waiting
        log.warning("%s", p.reason)
        self.wake()

    async def _pre_failover_allows(self, f: Failover) -> bool:
        hook = self._config.failover.pre_failover_hook
        if not hook:
            return True
        result = await run_executable(
            [hook],
            timeout=self._config.failover.hook_timeout_seconds,
            env={
                "HANGWATCH_GROUP": f.group,
                "HANGWATCH_FROM": f.from_host,
                "HANGWATCH_TO": f.to_host,
                "HANGWATCH_REASON": f.reason,
                "HANGWATCH_FAILOVER_ID": f.id,
                "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            },
        )
        if result.ok:
            return True
        vetoed = machine.note(
            f,
            time.time(),
            SYSTEM,
            f"pre-failover hook vetoed automatic approval: "
            f"{result.describe()}; output: {result.output_tail[-500:]}",
        )
        await self.commit(
            FailoverCommit(
                vetoed, audit=(SYSTEM, "system", "veto", f"{f.id}: {vetoed.steps[-1].detail}")
            )
        )
        return False

    async def _drive(self, f: Failover, state: ClusterState) -> None:
        if f.state in (FState.PROPOSED, FState.FENCE_FAILED):
            return
        results = await self._db.run(self._store.command_results, [f.demote_id, f.promote_id])
        fenced = await self._db.run(self._store.fence_result, f.id)
        group = next((g for g in state.groups if g.name == f.group), None)
        new, actions = machine.advance(
            f,
            state.now,
            group_epoch=group.epoch if group else f.epoch,
            group_primary=group.primary if group else None,
            results={k: _outcome(v) for k, v in results.items()},
            fence_result=CommandOutcome(*fenced) if fenced else None,
            fence_configured=self._config.fence_for(f.from_host) is not None,
            timeouts=self.timeouts,
        )
        if (
            f.fence_started
            and fenced is None
            and f.id not in self._fencing
            and new.state is FState.FENCING
        ):
            # A fence started before a controller restart: fencing off is idempotent.
            actions = [*actions, RunFence(f.from_host)]
        if new is not f:
            await self.apply(new, actions)
            return
        if actions:
            self._run_side_effects(new, actions)
        self._push_again(f)

    def _push_again(self, f: Failover) -> None:
        """Offers the step's command again to a connected stream that may have missed it
        (a push skipped by a cancelled request); a stream that has it ignores the id."""
        if f.state is FState.FENCING and not f.fence_started:
            send = SendCommand(f.from_host, "demote", f.demote_id, f.epoch, "standby")
        elif f.state is FState.PROMOTING:
            send = SendCommand(f.to_host, "promote", f.promote_id, f.epoch, "primary")
        else:
            return
        self._hub.push(send.host, [self._command(f, send)])

    async def apply(self, f: Failover, actions: list[machine.Action], role: str = "system") -> None:
        """Persists a step with everything it changes, then sends and starts what it says."""
        last = f.steps[-1]
        change = FailoverCommit(
            f,
            audit=(
                last.actor,
                "system",
                f"failover {f.state.value.lower()}",
                f"{f.id}: {last.detail}",
            ),
        )
        commands: list[tuple[str, pb.Command]] = []
        for action in actions:
            if isinstance(action, SetEpoch):
                change = dataclasses.replace(change, epoch=(action.group, action.epoch))
            elif isinstance(action, SendCommand):
                commands.append((action.host, self._command(f, action)))
            elif isinstance(action, SetPrimary):
                change = dataclasses.replace(change, primary=(action.group, action.host))
            elif isinstance(action, BlockAuto):
                change = dataclasses.replace(
                    change, auto_blocked_until=(action.group, action.until)
                )
            elif isinstance(action, MarkNeedsClear):
                change = dataclasses.replace(change, needs_clear=(action.host, action.reason))
        await self.commit(dataclasses.replace(change, commands=tuple(commands)))
        log.info("failover %s of %s: %s: %s", f.id, f.group, f.state.value, last.detail)
        self._run_side_effects(f, actions)
        for host, command in commands:
            self._hub.push(host, [command])

    def _run_side_effects(self, f: Failover, actions: list[machine.Action]) -> None:
        for action in actions:
            if isinstance(action, RunFence) and f.id not in self._fencing:
                self._fencing.add(f.id)
                task = asyncio.create_task(self._fence(f, action.host), name=f"fence-{f.id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _fence(self, f: Failover, host: str) -> None:
        settings = self._config.fence_for(host)
        try:
            if settings is None:
                ok, detail = False, f"no fence agent configured for {host}"
            else:
                log.warning("fencing %s with %s", host, settings.agent)
                result = await fence(settings, host, f.group, f.epoch, f.id)
                ok, detail = result.ok, result.describe()
            await self._db.run(self._store.record_fence_result, f.id, ok, detail, time.time())
            await self._db.run(
                self._store.append_audit,
                time.time(),
                SYSTEM,
                "system",
                "fence",
                host,
                f"{f.id}: {'succeeded' if ok else 'failed'}: {detail}",
                ok,
            )
        finally:
            self._fencing.discard(f.id)
        self.wake()

    def _command(self, f: Failover, send: SendCommand) -> pb.Command:
        timeout = self.timeouts.demote if send.action == "demote" else self.timeouts.promote
        return pb.Command(
            id=send.command_id,
            group=f.group,
            epoch=send.epoch,
            action=pb.ACTION_DEMOTE if send.action == "demote" else pb.ACTION_PROMOTE,
            reason=f.reason[:1000],
            timeout=pbtime.duration(timeout),
            issued_at=pbtime.timestamp(time.time()),
            failover_id=f.id,
            role=send.role,
        )

    async def commit(self, change: FailoverCommit) -> None:
        """Persists a failover step, its side changes and its audit entry, atomically."""
        await self._db.run(self._store.commit_failover, change, time.time())

    def close_served_incidents(self, state: ClusterState) -> None:
        """An incident ends once its group is served by a healthy primary (store thread)."""
        busy = {f.group for f in state.failovers if f.state.active}
        for group in state.groups:
            if group.name in busy:
                continue
            primary = state.hosts.get(group.primary)
            if primary is None or primary.liveness != "HEALTHY":
                continue
            watched = [primary.mounts[m] for m in group.mounts if m in primary.mounts]
            if watched and all(health == "OK" for health in watched):
                incident = self._store.open_incident_for(group.name)
                if incident is not None:
                    self._store.close_incident(incident.id, state.now)


def _outcome(result: pb.CommandResult) -> CommandOutcome:
    ok = result.status == pb.COMMAND_STATUS_SUCCEEDED
    status = pb.CommandStatus.Name(result.status).removeprefix("COMMAND_STATUS_")
    tail = result.output_tail.strip().splitlines()[-1:] or [""]
    detail = f"{status} (exit {result.exit_code})" + (f": {tail[0][:200]}" if tail[0] else "")
    return CommandOutcome(ok, detail)
