"""Carries out failovers: one loop that reads the cluster, decides, and drives.

Each pass reads an immutable `ClusterState` (`controller.failover.snapshot`), asks
the pure engine what to propose, and moves every open failover one step with the
pure state machine. Every change goes through the ledger, which persists it (with
its commands and the group's epoch, in one transaction) before anything is sent, so
a controller killed at any point resumes where the store says it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from controller.api.identity import SYSTEM
from controller.config import ControllerConfig
from controller.failover import engine, machine
from controller.failover.fencing import fence
from controller.failover.ledger import Ledger
from controller.failover.machine import Failover, RunFence
from controller.failover.model import ClusterState, FailoverState
from controller.failover.snapshot import Snapshots
from controller.failover.suspicion import ranking_note
from controller.incidents.tracker import IncidentTracker
from controller.store.dbthread import DbThread
from controller.store.interface import Store
from hangwatch.errors import GroupBusy, PolicyHold, StaleFailover, StoreFull
from hangwatch.executables import run_executable
from hangwatch.ids import new_ulid

log = logging.getLogger(__name__)

# States in which a fence agent may be running for the failover.
_FENCING_STATES = (FailoverState.FENCING, FailoverState.RECALLING)


class Coordinator:
    def __init__(
        self,
        store: Store,
        db: DbThread,
        config: ControllerConfig,
        ledger: Ledger,
        snapshots: Snapshots,
        incidents: IncidentTracker,
    ) -> None:
        self._store = store
        self._db = db
        self._config = config
        self._ledger = ledger
        self._snapshots = snapshots
        self._incidents = incidents
        self._wake = asyncio.Event()
        self._fencing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._settled = False
        ledger.listen(lambda _: self.wake())

    def wake(self) -> None:
        """Something changed (a command result, an approval): run a pass now."""
        self._wake.set()

    async def run(self) -> None:
        await self._db.run(
            self._store.seed_groups, [(g.name, g.primary) for g in self._config.groups]
        )
        live = self._config.liveness
        log.info(
            "no failover on liveness, or on health reported before this start, for %.0fs: "
            "agents reconnect within %.0fs (liveness.agent_max_backoff_seconds) and a "
            "host is unreachable after %.0fs",
            live.reconnect_grace_seconds,
            live.agent_max_backoff_seconds,
            live.unreachable_after_seconds,
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

    # One pass.

    async def step(self) -> None:
        async with self._lock:
            now = time.time()
            state, open_failovers = await self._db.run(self._snapshots.take, now)
            behind = engine.epochs_behind(state)
            for r in behind:
                await self._ledger.raise_epoch(r.group, r.epoch, r.host, r.was)
            if behind:
                state, open_failovers = await self._db.run(self._snapshots.take, now)
            if not self._settled and now >= state.settling_until:
                self._settled = True
                log.info("agents had time to reconnect: failovers on liveness allowed")
            for f in open_failovers:
                await self._drive(f, state)
            for decision in engine.decide(state):
                if isinstance(decision, engine.Proposal):
                    await self._propose(decision, state)
                elif isinstance(decision, engine.Approve):
                    await self._approve_held(decision, state)
                elif isinstance(decision, engine.Preempt):
                    await self._preempt(decision, state.now)
            await self._incidents.review(state)

    async def _propose(self, p: engine.Proposal, state: ClusterState) -> None:
        now = state.now
        group = next(g for g in state.groups if g.name == p.group)
        incident_id = await self._incidents.open(group, state.hosts.get(p.from_host), p.reason, now)
        note = ranking_note(state, p.group, p.candidates, p.to_host)
        f = machine.propose(
            new_ulid(now),
            p.group,
            p.trigger,
            p.from_host,
            p.to_host,
            p.reason,
            SYSTEM.name,
            now,
            p.reason
            + (f"; {note}" if note else "")
            + ("" if p.auto_approve else "; needs approval: " + "; ".join(p.hold)),
            candidates=p.candidates,
            incident_id=incident_id,
        )
        try:
            await self._ledger.propose(f, SYSTEM)
        except GroupBusy:
            return  # a person's proposal for the group got there first
        log.warning(
            "proposed failover %s of %s: %s -> %s (%s)",
            f.id,
            p.group,
            p.from_host,
            p.to_host or "none",
            p.reason,
            extra={"failover": f.id, "group": p.group, "host": p.from_host},
        )
        if p.auto_approve:
            await self._approve(f, state)

    async def _approve_held(self, a: engine.Approve, state: ClusterState) -> None:
        """Approves a proposal policy held earlier, now that nothing holds it."""
        f = await self._db.run(self._store.get_failover, a.failover_id)
        if f is None or f.state is not FailoverState.PROPOSED:
            return
        if f.to_host != a.to_host:
            why = f"{f.to_host or 'no member'} was not eligible; {a.to_host} is the best one now"
            try:
                f = await self._ledger.retarget(f, SYSTEM, a.to_host, why, a.candidates)
            except StaleFailover:
                return  # a person decided meanwhile
        log.warning("held failover %s of %s may go ahead now", f.id, f.group)
        await self._approve(f, state)

    async def _approve(self, f: Failover, state: ClusterState) -> None:
        """Policy approves `f` (unless the pre-failover hook vetoes it), with the storm
        limits checked again as the approval is written; then its first step."""
        if not await self._pre_failover_allows(f):
            return
        try:
            approved = await self._ledger.approve(
                f, SYSTEM, auto=True, policy=state.policy, groups=len(state.groups)
            )
        except (PolicyHold, StaleFailover) as exc:
            log.warning("failover %s of %s stays proposed: %s", f.id, f.group, exc)
            return
        await self._drive(approved, state)

    async def _preempt(self, p: engine.Preempt, now: float) -> None:
        """Cancels a scheduled switchover so the next pass can propose a failover."""
        f = await self._db.run(self._store.get_failover, p.failover_id)
        if f is None or f.state is not FailoverState.APPROVED:
            return
        try:
            await self._ledger.cancel(f, SYSTEM, p.reason)
        except StaleFailover:
            return  # it started meanwhile: it is no longer waiting
        log.warning("%s", p.reason, extra={"failover": f.id, "group": f.group})

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
        await self._ledger.note(
            f,
            SYSTEM,
            "veto",
            f"pre-failover hook vetoed automatic approval: "
            f"{result.describe()}; output: {result.output_tail[-500:]}",
            vetoed=True,
        )
        return False

    async def _drive(self, f: Failover, state: ClusterState) -> None:
        if f.state is FailoverState.PROPOSED:
            return
        new, actions = await self._ledger.advance(
            f, state, fence_configured=self._config.fence_for(f.fence_host) is not None
        )
        running = new.fence_key(new.fence_host) in self._fencing
        if new.fence_started and new.state in _FENCING_STATES and not running:
            # A fence started before a controller restart (no outcome yet, or the step
            # would have moved on): fencing off is idempotent.
            actions = [*actions, RunFence(new.fence_host)]
        self._run_side_effects(new, actions)
        if new is f:
            self._ledger.offer_again(f)

    def _run_side_effects(self, f: Failover, actions: list[machine.Action]) -> None:
        for action in actions:
            if not isinstance(action, RunFence) or f.fence_key(action.host) in self._fencing:
                continue
            key = f.fence_key(action.host)
            self._fencing.add(key)
            task = asyncio.create_task(self._fence(f, action.host), name=f"fence-{key}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fence(self, f: Failover, host: str) -> None:
        settings = self._config.fence_for(host)
        try:
            if settings is None:
                ok, detail = False, f"no fence agent configured for {host}"
            else:
                log.warning(
                    "fencing %s with %s",
                    host,
                    settings.agent,
                    extra={"failover": f.id, "group": f.group, "host": host},
                )
                result = await fence(settings, host, f.group, f.epoch, f.id)
                ok, detail = result.ok, result.describe()
            await self._ledger.record_fence(f, host, ok, detail)
        finally:
            self._fencing.discard(f.fence_key(host))
        self.wake()
