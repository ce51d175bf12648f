"""The failover decision engine (pure): cluster state in, plan out.

For each group it answers: does the primary need replacing (a confirmed lockup on
one of the group's mounts, or the primary unreachable after it was last seen
SUSPECT or LOCKED), which member should take over and why each other was passed
over, and whether policy lets the move go ahead without a person. Tested with
golden files of state -> plan, the way Pacemaker tests its scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.failover.model import (
    Candidate,
    ClusterState,
    FailoverState,
    GroupView,
    HostView,
    Trigger,
)

TROUBLED = ("SUSPECT", "LOCKED")


@dataclass(frozen=True)
class Proposal:
    group: str
    trigger: Trigger
    from_host: str
    to_host: str  # "" when no member is eligible
    candidates: tuple[Candidate, ...]
    reason: str
    # True when policy approves it without a person; else `hold` says why not.
    auto_approve: bool
    hold: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skip:
    """A group that needs a failover but gets no proposal, and why."""

    group: str
    reason: str


@dataclass(frozen=True)
class Preempt:
    """A switchover scheduled for later is cancelled: the group needs a failover now."""

    group: str
    failover_id: str
    reason: str


Decision = Proposal | Skip | Preempt


def candidates(
    state: ClusterState, group: GroupView, *, exclude: str, force_host: str = ""
) -> tuple[Candidate, ...]:
    """Every member but `exclude`, eligible ones first in ranking order.

    Ranking: preference order, except that members whose last probe was slow rank
    after those whose probes are fast. `force_host` is eligible whatever it lacks
    (a person chose it with --force); its reasons are still listed.
    """
    out = []
    for index, member in enumerate(group.members):
        if member == exclude:
            continue
        reasons = _ineligible(state, group, state.hosts.get(member), member)
        host = state.hosts.get(member)
        latency = (
            max((host.probe_latency.get(m, 0.0) for m in group.mounts), default=0.0)
            if host
            else None
        )
        eligible = not reasons or member == force_host
        out.append(
            (
                not eligible,
                bool(latency and latency > state.policy.slow_probe_seconds),
                index,
                Candidate(member, eligible, tuple(reasons), latency),
            )
        )
    return tuple(c for *_, c in sorted(out, key=lambda t: t[:3]))


def _ineligible(
    state: ClusterState, group: GroupView, host: HostView | None, member: str
) -> list[str]:
    if host is None:
        return ["has never registered"]
    reasons = []
    if host.liveness != "HEALTHY":
        age = f"{host.heartbeat_age:.0f}s old" if host.heartbeat_age is not None else "none"
        reasons.append(f"heartbeat {age} ({host.liveness})")
    # A member is judged on the group's mounts it watches (paths may differ per host).
    watched = [m for m in group.mounts if m in host.mounts]
    if not watched:
        reasons.append(f"watches none of the group's mounts ({', '.join(group.mounts)})")
    for mount in watched:
        if host.mounts[mount] != "OK":
            reasons.append(f"{mount} is {host.mounts[mount]}")
    if host.maintenance:
        reasons.append("in maintenance")
    if host.advisories:
        reasons.append(f"at risk: {', '.join(host.advisories)}")
    if host.needs_clear:
        reasons.append(
            f"a failover moved away from it: clear it with 'hangwatchctl host clear {member}'"
        )
    return reasons


def trigger_for(state: ClusterState, group: GroupView) -> tuple[Trigger, str] | None:
    """Why the group's primary must be replaced, if it must."""
    return _stuck(state, group, group.primary)


def frozen(state: ClusterState, group_name: str, host: str) -> str:
    """Why `host` cannot demote the group's service (a group mount LOCKED, or unreachable
    after SUSPECT or LOCKED), when the group fences such a host at once; "" otherwise.

    A demote hook stops services that hold files on the frozen mount, so it blocks in
    D state until the thaw: waiting out its deadline only prolongs the outage.
    """
    group = next((g for g in state.groups if g.name == group_name), None)
    if group is None or group.frozen_primary != "fence":
        return ""
    found = _stuck(state, group, host)
    return found[1] if found else ""


def _stuck(state: ClusterState, group: GroupView, host_id: str) -> tuple[Trigger, str] | None:
    host = state.hosts.get(host_id)
    if host is None:
        return None
    locked = [m for m in group.mounts if host.mounts.get(m) == "LOCKED"]
    if locked:
        return Trigger.LOCKUP, f"lockup confirmed on {host_id}:{', '.join(locked)}"
    troubled = [m for m in group.mounts if host.mounts.get(m) in TROUBLED]
    if host.liveness == "UNREACHABLE" and troubled:
        return (
            Trigger.UNREACHABLE,
            f"{host_id} unreachable after {', '.join(f'{m} {host.mounts[m]}' for m in troubled)}",
        )
    return None


def approval_holds(state: ClusterState, group: GroupView) -> list[str]:
    """Why policy will not approve an automatic failover of `group` now (empty: it will)."""
    holds = []
    if group.mode != "auto":
        holds.append("the group is in manual mode")
    if not state.automation:
        holds.append("automation is off")
    if group.auto_blocked_until is not None and group.auto_blocked_until > state.now:
        left = group.auto_blocked_until - state.now
        holds.append(
            f"anti-flap: the group failed over recently; automatic approval "
            f"blocked for {left / 3600:.1f}h more (end it: hangwatchctl failover ack "
            f"{group.name})"
        )
    policy = state.policy
    running = [
        f
        for f in state.failovers
        if f.state.active and f.state != FailoverState.PROPOSED and not f.waiting
    ]
    if len(running) >= policy.max_concurrent:
        holds.append(
            f"{len(running)} failover(s) already in progress "
            f"(at most {policy.max_concurrent} at once)"
        )
    recent = {
        f.group
        for f in state.failovers
        if f.auto
        and state.now - f.created_at <= policy.window_seconds
        and f.state != FailoverState.PROPOSED
    }
    # One failover per window is always allowed, however few groups there are.
    allowed = max(1, int(len(state.groups) * policy.max_group_percent / 100.0))
    if len(recent) + 1 > allowed:
        holds.append(
            f"{len(recent)} of {len(state.groups)} groups failed over automatically "
            f"in the last {policy.window_seconds / 60:.0f} min (limit "
            f"{policy.max_group_percent:.0f}%)"
        )
    return holds


def decide(state: ClusterState) -> list[Decision]:
    """What to do about every group whose primary needs replacing."""
    busy = {f.group for f in state.failovers if f.state.active}
    out: list[Decision] = []
    for group in state.groups:
        found = trigger_for(state, group)
        if found is None:
            continue
        trigger, reason = found
        if group.name in busy:
            waiting = next(
                (f for f in state.failovers if f.group == group.name and f.waiting), None
            )
            if waiting is not None:
                # A lockup does not wait for a switchover scheduled for later.
                out.append(
                    Preempt(
                        group.name,
                        waiting.id,
                        f"{reason}: the scheduled "
                        f"switchover {waiting.id} is cancelled for a failover",
                    )
                )
            else:
                out.append(Skip(group.name, "a failover of this group is already open"))
            continue
        maintenance = _maintenance(state, group)
        if maintenance:
            out.append(Skip(group.name, f"{reason}, but {maintenance}: no automatic action"))
            continue
        ranked = candidates(state, group, exclude=group.primary)
        target = ranked[0].host_id if ranked and ranked[0].eligible else ""
        holds = approval_holds(state, group)
        if not target:
            passed_over = "; ".join(f"{c.host_id} {', '.join(c.reasons)}" for c in ranked)
            holds.insert(
                0,
                f"no eligible member: {passed_over}" if ranked else "the group has no other member",
            )
        out.append(
            Proposal(
                group.name,
                trigger,
                group.primary,
                target,
                ranked,
                reason,
                auto_approve=not holds,
                hold=tuple(holds),
            )
        )
    return out


def _maintenance(state: ClusterState, group: GroupView) -> str:
    if state.cluster_maintenance:
        return "the cluster is in maintenance"
    if group.maintenance:
        return "the group is in maintenance"
    primary = state.hosts.get(group.primary)
    if primary is not None and primary.maintenance:
        return f"{group.primary} is in maintenance"
    return ""
