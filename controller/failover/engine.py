"""The failover decision engine (pure): cluster state in, plan out.

For each group it answers: does the primary need replacing (a confirmed lockup on
one of the group's mounts, or the primary unreachable after it was last seen
SUSPECT or LOCKED), which member should take over and why each other was passed
over, and whether policy lets the move go ahead without a person. Tested with
golden files of state -> plan, the way Pacemaker tests its scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from controller.failover.model import (
    Candidate,
    ClusterState,
    FailoverState,
    FailoverView,
    GroupView,
    HostView,
    Policy,
    Trigger,
)

TROUBLED = ("SUSPECT", "LOCKED")
# What the engine proposes by itself; people propose MANUAL, SWITCHOVER or UPGRADE.
AUTOMATIC = (Trigger.LOCKUP, Trigger.UNREACHABLE)


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
class Approve:
    """A held automatic proposal whose hold has cleared: policy approves it now, to
    `to_host` (its own target while that is still eligible, else the best one now)."""

    group: str
    failover_id: str
    to_host: str
    candidates: tuple[Candidate, ...]
    reason: str


@dataclass(frozen=True)
class Preempt:
    """A switchover scheduled for later is cancelled: the group needs a failover now."""

    group: str
    failover_id: str
    reason: str


Decision = Proposal | Approve | Skip | Preempt


@dataclass(frozen=True)
class RaiseEpoch:
    """A member has seen a higher epoch for the group than the controller keeps."""

    group: str
    epoch: int
    host: str
    was: int  # the group's epoch as the controller keeps it


def epochs_behind(state: ClusterState) -> list[RaiseEpoch]:
    """Groups whose epoch is below one a member's agent reports having seen.

    Only a controller that lost or restored its store gets here (an epoch is taken in
    the store before any command carries it). Its group must catch up: its next
    commands would otherwise be refused as stale, and the hosts fenced for it.
    """
    out = []
    for group in state.groups:
        reports = [
            (view.epochs.get(group.name, 0), member)
            for member in group.members
            if (view := state.hosts.get(member)) is not None
        ]
        epoch, member = max(reports, default=(0, ""))
        if epoch > group.epoch:
            out.append(RaiseEpoch(group.name, epoch, member, group.epoch))
    return out


def candidates(
    state: ClusterState, group: GroupView, *, exclude: str, force_host: str = ""
) -> tuple[Candidate, ...]:
    """Every member but `exclude`, eligible ones first in ranking order.

    Ranking: preference order, except that members on a kernel an open advisory draft
    suspects rank after those on another kernel or filesystem, and members whose last
    probe was slow after those whose probes are fast. `force_host` is eligible whatever
    it lacks (a person chose it with --force); its reasons are still listed.
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
                bool(host and host.suspected),
                bool(latency and latency > state.policy.slow_probe_seconds),
                index,
                Candidate(member, eligible, tuple(reasons), latency),
            )
        )
    return tuple(c for *_, c in sorted(out, key=lambda t: t[:4]))


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
    if not host.heard_since_start:
        reasons.append("not heard from since the controller started")
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


def approval_holds(
    state: ClusterState, group: GroupView, approved: Sequence[FailoverView] = ()
) -> list[str]:
    """Why policy will not approve an automatic failover of `group` now (empty: it will).

    `approved`: failovers approved since `state` was taken (earlier in the same pass),
    which count against the storm limits like those already running.
    """
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
    failovers = (*state.failovers, *approved)
    return holds + storm_holds(failovers, len(state.groups), state.now, state.policy)


def storm_holds(
    failovers: Sequence[FailoverView], group_count: int, now: float, policy: Policy
) -> list[str]:
    """Why one more automatic failover would break the storm limits (max_concurrent,
    max_group_percent) given `failovers`, the ones already proposed or past that.

    Checked for each approval against what is approved already, in the approval's own
    store transaction too: a shared SAN freezing locks many groups in one pass, the
    case these limits exist for.
    """
    holds = []
    running = [
        f
        for f in failovers
        if f.state.active and f.state != FailoverState.PROPOSED and not f.waiting
    ]
    if len(running) >= policy.max_concurrent:
        holds.append(
            f"{len(running)} failover(s) already in progress "
            f"(at most {policy.max_concurrent} at once)"
        )
    recent = {
        f.group
        for f in failovers
        if f.auto
        and now - f.created_at <= policy.window_seconds
        and f.state != FailoverState.PROPOSED
    }
    # One failover per window is always allowed, however few groups there are.
    allowed = max(1, int(group_count * policy.max_group_percent / 100.0))
    if len(recent) + 1 > allowed:
        holds.append(
            f"{len(recent)} of {group_count} groups failed over automatically "
            f"in the last {policy.window_seconds / 60:.0f} min (limit "
            f"{policy.max_group_percent:.0f}%)"
        )
    return holds


def decide(state: ClusterState) -> list[Decision]:
    """What to do about every group whose primary needs replacing: propose (approved
    by policy, or held and why), approve a held automatic proposal whose hold has
    cleared, preempt a scheduled switchover, or nothing (and why).

    Groups are taken in order, and each approval counts against the storm limits of
    the groups after it.
    """
    approved: list[FailoverView] = []
    out: list[Decision] = []
    for group in state.groups:
        found = trigger_for(state, group)
        if found is None:
            continue
        trigger, reason = found
        decision = _decide_group(state, group, trigger, reason, approved)
        if isinstance(decision, Approve) or (
            isinstance(decision, Proposal) and decision.auto_approve
        ):
            approved.append(
                FailoverView("", group.name, FailoverState.APPROVED, state.now, auto=True)
            )
        out.append(decision)
    return out


def _decide_group(
    state: ClusterState,
    group: GroupView,
    trigger: Trigger,
    reason: str,
    approved: Sequence[FailoverView],
) -> Decision:
    open_failover = next(
        (f for f in state.failovers if f.group == group.name and f.state.active), None
    )
    if open_failover is not None and open_failover.waiting:
        # A lockup does not wait for a switchover scheduled for later.
        return Preempt(
            group.name,
            open_failover.id,
            f"{reason}: the scheduled switchover {open_failover.id} is cancelled for a failover",
        )
    if open_failover is not None and not _held(open_failover):
        return Skip(group.name, "a failover of this group is already open")
    settling = _settling(state, group, trigger)
    if settling:
        return Skip(group.name, f"{reason}, but {settling}")
    maintenance = _maintenance(state, group)
    if maintenance:
        return Skip(group.name, f"{reason}, but {maintenance}: no automatic action")
    ranked = candidates(state, group, exclude=group.primary)
    eligible = [c.host_id for c in ranked if c.eligible]
    holds = approval_holds(state, group, approved)
    if not eligible:
        passed_over = "; ".join(f"{c.host_id} {', '.join(c.reasons)}" for c in ranked)
        holds.insert(
            0, f"no eligible member: {passed_over}" if ranked else "the group has no other member"
        )
    if open_failover is not None:
        # An automatic proposal held earlier (by policy, or by a crash before its
        # approval): approved once nothing holds it, keeping its target while eligible.
        if holds:
            return Skip(group.name, f"failover {open_failover.id} waits: {'; '.join(holds)}")
        target = open_failover.to_host if open_failover.to_host in eligible else eligible[0]
        return Approve(group.name, open_failover.id, target, ranked, reason)
    return Proposal(
        group.name,
        trigger,
        group.primary,
        eligible[0] if eligible else "",
        ranked,
        reason,
        auto_approve=not holds,
        hold=tuple(holds),
    )


def _held(f: FailoverView) -> bool:
    """An automatic proposal policy may still approve: proposed by the engine itself and
    not vetoed by the pre-failover hook (a person's proposal waits for a person)."""
    return f.state is FailoverState.PROPOSED and f.trigger in AUTOMATIC and not f.vetoed


def _settling(state: ClusterState, group: GroupView, trigger: Trigger) -> str:
    """Why the trigger cannot be trusted yet: the controller started recently, agents
    are still reconnecting, and it rests on liveness or on a report from before the
    start (a primary that was SUSPECT then may be fine now)."""
    if state.now >= state.settling_until:
        return ""
    primary = state.hosts.get(group.primary)
    if trigger is Trigger.UNREACHABLE or (primary is not None and not primary.heard_since_start):
        return (
            f"the controller started recently: agents have "
            f"{state.settling_until - state.now:.0f}s more to reconnect before a failover "
            f"on liveness or on health reported before the start"
        )
    return ""


def _maintenance(state: ClusterState, group: GroupView) -> str:
    if state.cluster_maintenance:
        return "the cluster is in maintenance"
    if group.maintenance:
        return "the group is in maintenance"
    primary = state.hosts.get(group.primary)
    if primary is not None and primary.maintenance:
        return f"{group.primary} is in maintenance"
    return ""
