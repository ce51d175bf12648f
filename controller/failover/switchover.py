"""Planning and starting a failover someone asked for: a person (`ProposeFailover`,
`Switchover`) or an upgrade plan draining a host. One code path, so an upgrade's
switchover is chosen, checked, audited and carried out exactly as a person's is."""

from __future__ import annotations

import time

from controller.api import validate
from controller.api.identity import Caller
from controller.failover import engine, machine
from controller.failover.coordinator import Coordinator
from controller.failover.machine import Failover
from controller.failover.model import ClusterState, FState, GroupView, Trigger
from controller.store.dbthread import DbThread
from controller.store.interface import FailoverCommit, Store
from hangwatch.ids import new_ulid


class PlanRefused(Exception):
    """The group's state does not allow the failover; the message says why."""


def find_group(state: ClusterState, name: str) -> GroupView:
    group = next((g for g in state.groups if g.name == name), None)
    if group is None:
        raise validate.Invalid(
            "group",
            f"no group {name[:80]!r} (known: {', '.join(g.name for g in state.groups) or 'none'})",
        )
    return group


def plan_failover(
    state: ClusterState,
    group_name: str,
    to_host: str,
    reason: str,
    force: bool,
    trigger: Trigger,
    actor: str,
) -> Failover:
    """A PROPOSED failover of `group_name`, with every member's ranking and reasons.

    Raises `validate.Invalid` for a bad request and `PlanRefused` when no eligible
    target exists (an at-risk or otherwise ineligible one needs `force`).
    """
    group = find_group(state, group_name)
    if any(f.group == group.name and f.state.active for f in state.failovers):
        raise PlanRefused(f"a failover of {group.name} is already open")
    if to_host and to_host not in group.members:
        raise validate.Invalid("to_host", f"{to_host[:80]!r} is not a member of {group.name}")
    if to_host == group.primary:
        raise validate.Invalid("to_host", f"{to_host!r} is already the primary")
    ranked = engine.candidates(
        state, group, exclude=group.primary, force_host=to_host if force else ""
    )
    chosen = (
        next((c for c in ranked if c.host_id == to_host), None)
        if to_host
        else next((c for c in ranked if c.eligible), None)
    )
    if chosen is None or not chosen.eligible:
        why = (
            "; ".join(f"{c.host_id}: {', '.join(c.reasons)}" for c in ranked)
            if chosen is None
            else f"{chosen.host_id}: {', '.join(chosen.reasons)}"
        )
        raise PlanRefused(
            f"no eligible target for {group.name} ({why}); name one with "
            "--to HOST --force to override"
        )
    now = time.time()
    forced = force and bool(chosen.reasons)
    detail = f"proposed by {actor}: {reason}" + (
        f" (forced past: {', '.join(chosen.reasons)})" if forced else ""
    )
    return Failover(
        id=new_ulid(now),
        group=group.name,
        state=FState.PROPOSED,
        trigger=trigger,
        from_host=group.primary,
        to_host=chosen.host_id,
        reason=reason,
        proposed_by=actor,
        created_at=now,
        forced=forced,
        candidates=ranked,
        steps=(machine.Step(FState.PROPOSED, now, actor, detail),),
    )


async def commit_new(store: Store, db: DbThread, f: Failover, who: Caller) -> None:
    """Stores a new failover with its audit entry ("propose (forced)" when it was)."""
    action = "propose (forced)" if f.forced else "propose"
    await db.run(
        store.commit_failover,
        FailoverCommit(
            f,
            audit=(
                who.name,
                who.role,
                action,
                f"{f.id}: {f.from_host} -> {f.to_host}: {f.steps[-1].detail}",
            ),
        ),
        time.time(),
    )


async def start_switchover(
    store: Store, db: DbThread, coordinator: Coordinator, f: Failover, who: Caller
) -> Failover:
    """Stores a planned move and approves it at once (it demotes first), then wakes the
    coordinator to carry it out."""
    await commit_new(store, db, f, who)
    approved = machine.approve(f, who.name, time.time())
    await db.run(
        store.commit_failover,
        FailoverCommit(approved, audit=(who.name, who.role, "approve", f"{f.id}: switchover")),
        time.time(),
    )
    coordinator.wake()
    return approved
