"""Planning a failover someone asked for: a person (`ProposeFailover`, `Switchover`)
or an upgrade plan draining a host. One code path, so an upgrade's switchover is
chosen and checked exactly as a person's is (and stored, through the ledger, alike)."""

from __future__ import annotations

import time

from controller.failover import engine, machine
from controller.failover.machine import Failover
from controller.failover.model import Candidate, ClusterState, GroupView, Trigger
from controller.failover.suspicion import ranking_note
from hangwatch.errors import Invalid, ProposalRefused
from hangwatch.ids import new_ulid


def find_group(state: ClusterState, name: str) -> GroupView:
    group = next((g for g in state.groups if g.name == name), None)
    if group is None:
        raise Invalid(
            "group",
            f"no group {name[:80]!r} (known: {', '.join(g.name for g in state.groups) or 'none'})",
        )
    return group


def choose_target(
    state: ClusterState, group: GroupView, to_host: str, force: bool
) -> tuple[Candidate, tuple[Candidate, ...]]:
    """The member a failover of `group` goes to (`to_host`, or the best eligible one) and
    the ranking of every member, with why each other one was passed over.

    Raises `Invalid` for a bad `to_host` and `ProposalRefused` when the target is not
    eligible (an at-risk or otherwise ineligible one needs `force`).
    """
    if to_host and to_host not in group.members:
        raise Invalid("to_host", f"{to_host[:80]!r} is not a member of {group.name}")
    if to_host == group.primary:
        raise Invalid("to_host", f"{to_host!r} is already the primary")
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
        raise ProposalRefused(
            f"no eligible target for {group.name} ({why}); name one with "
            "--to HOST --force to override"
        )
    return chosen, ranked


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

    Raises `Invalid` for a bad request and `ProposalRefused` when no eligible
    target exists (an at-risk or otherwise ineligible one needs `force`).
    """
    group = find_group(state, group_name)
    if any(f.group == group.name and f.state.active for f in state.failovers):
        raise ProposalRefused(f"a failover of {group.name} is already open")
    chosen, ranked = choose_target(state, group, to_host, force)
    now = time.time()
    forced = force and bool(chosen.reasons)
    detail = f"proposed by {actor}: {reason}" + (
        f" (forced past: {', '.join(chosen.reasons)})" if forced else ""
    )
    note = ranking_note(state, group.name, ranked, chosen.host_id)
    detail += f"; {note}" if note else ""
    return machine.propose(
        new_ulid(now),
        group.name,
        trigger,
        group.primary,
        chosen.host_id,
        reason,
        actor,
        now,
        detail,
        candidates=ranked,
        forced=forced,
    )
