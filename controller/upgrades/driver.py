"""Drives upgrade plans on the controller: snapshot, ask the planner, persist, act.

Every change to a plan, the driver's and people's alike, is a read-modify-write
under one lock and is persisted (with its audit entry) before the switchovers it
asks for are started, so a controller killed at any point resumes from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from controller.api.auditlog import AuditLog
from controller.api.identity import SYSTEM, Caller
from controller.config import ControllerConfig
from controller.failover import switchover
from controller.failover.ledger import Ledger
from controller.failover.model import Trigger
from controller.failover.snapshot import Snapshots
from controller.store.dbthread import DbThread
from controller.store.interface import Store
from controller.upgrades import planner
from controller.upgrades.planner import HostFacts, Plan, StartSwitchover, Switch, World
from hangwatch.errors import Invalid, ProposalRefused, StoreFull, UpgradeRefused

log = logging.getLogger(__name__)

# Failovers looked at for a draining host's switchover (newest first).
RECENT_SWITCHES = 200


class UpgradeDriver:
    def __init__(
        self,
        store: Store,
        db: DbThread,
        config: ControllerConfig,
        ledger: Ledger,
        snapshots: Snapshots,
    ) -> None:
        self._store = store
        self._db = db
        self._config = config
        self._ledger = ledger
        self._snapshots = snapshots
        self._audit_log = AuditLog(store, db)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except StoreFull:
                pass  # logged once by the store; the next pass tries again
            except Exception:
                log.exception("upgrade pass failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._config.upgrades.interval_seconds)

    def world(self, now: float, busy_elsewhere: frozenset[str] = frozenset()) -> World:
        """The cluster as the planner sees it (store thread)."""
        cluster, _ = self._snapshots.take(now)
        facts = {
            r.host_id: HostFacts(
                host_id=r.host_id,
                boot_id=r.boot_id,
                kernel=r.registration.inventory.kernel_release,
                heartbeat_boot_id=r.last_heartbeat.boot_id if r.last_heartbeat else "",
                mounts={m.path: (m.fs_type, dict(m.fs_features)) for m in r.registration.mounts},
            )
            for r in self._store.list_hosts()
        }
        switches = tuple(
            Switch(f.id, f.group, f.state, f.trigger, f.from_host, f.created_at)
            for f in self._store.list_failovers(limit=RECENT_SWITCHES)
        )
        return World(
            cluster, facts, switches, busy_elsewhere, self._config.upgrades.max_parallel_hosts
        )

    async def step(self) -> None:
        async with self._lock:
            plans = await self._db.run(self._store.list_plans, True)
            for plan in plans:
                others = frozenset(
                    h.host_id
                    for p in plans
                    if p.name != plan.name
                    for h in p.hosts
                    if h.state.in_progress
                )
                world = await self._db.run(self.world, time.time(), others)
                new, actions = planner.step(plan, world)
                if new != plan:
                    await self._save(new, _changes(plan, new), SYSTEM)
                for action in actions:
                    await self._switch(action)

    async def _switch(self, action: StartSwitchover) -> None:
        """Starts a drain's switchover the way a person's `Switchover` starts."""
        cluster = await self._snapshots.cluster()
        try:
            f = switchover.plan_failover(
                cluster,
                action.group,
                action.to_host,
                action.reason,
                False,
                Trigger.UPGRADE,
                SYSTEM.name,
            )
        except (ProposalRefused, Invalid) as exc:
            log.warning(
                "upgrade switchover of %s not started (next pass retries): %s", action.group, exc
            )
            return
        await self._ledger.switchover(f, SYSTEM)
        log.info("upgrade: switching %s from %s to %s (%s)", f.group, f.from_host, f.to_host, f.id)

    async def _save(self, plan: Plan, detail: str, who: Caller, action: str = "upgrade") -> None:
        audit = (who.name, who.role, action, detail) if detail else None
        await self._db.run(self._store.save_plan, plan, time.time(), audit)

    async def create(self, plan: Plan, who: Caller) -> bool:
        """Stores a new plan (False if the name is taken); refuses hosts in another open plan."""
        async with self._lock:
            taken = {
                h.host_id: p.name
                for p in await self._db.run(self._store.list_plans, True)
                for h in p.hosts
                if not h.state.finished
            }
            clash = [
                f"{h.host_id} (in {taken[h.host_id]})" for h in plan.hosts if h.host_id in taken
            ]
            if clash:
                raise UpgradeRefused(f"already in an open plan: {', '.join(clash)}")
            if not await self._db.run(self._store.create_plan, plan, time.time()):
                return False
            hosts = ", ".join(h.host_id for h in plan.hosts)
            await self._audit_log.append(
                who,
                "upgrade plan",
                plan.name,
                f"target kernel {plan.target_kernel}"
                + (f", fs {plan.target_fs}" if plan.target_fs else "")
                + f", soak {plan.soak_seconds:.0f}s; hosts: {hosts}",
            )
        self.wake()
        return True

    async def change(
        self, name: str, change: Callable[[Plan], Plan], who: Caller, action: str, detail: str
    ) -> Plan | None:
        """Applies a person's change to a plan (None: no such plan); `UpgradeRefused` passes."""
        async with self._lock:
            plan = await self._db.run(self._store.get_plan, name)
            if plan is None:
                return None
            new = change(plan)
            await self._save(new, detail, who, action)
        self.wake()
        return new


def _changes(old: Plan, new: Plan) -> str:
    """What an audit entry says about a pass: state changes only (details churn)."""
    parts = []
    if old.state is not new.state:
        parts.append(f"plan {old.state.value} -> {new.state.value}: {new.detail}")
    before = {h.host_id: h for h in old.hosts}
    for h in new.hosts:
        was = before.get(h.host_id)
        if was is not None and was.state is not h.state:
            parts.append(f"{h.host_id} {was.state.value} -> {h.state.value}: {h.detail}")
    return "; ".join(parts)
