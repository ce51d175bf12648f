"""The upgrade planner (pure): a plan and what the cluster looks like in, the next plan out.

Each host goes PENDING -> DRAINING -> UPGRADING -> VERIFYING -> DONE (or FAILED,
SKIPPED). The planner never reads a clock or the store: the driver
(`controller.upgrades.driver`) hands it a `World` snapshot, persists the plan it
returns and carries out the switchovers it asks for. Because every decision is
made again from the stored plan and the snapshot, a restarted controller
resumes a plan where it was.

Rules that keep the service up:
- a primary is drained first: its groups switch over to a standby that already
  runs the target kernel (and is otherwise eligible), one switchover at a time;
- never two members of one group at once, and at most `max_parallel` hosts;
- the upgrade itself is done by people or their tooling; the host counts as
  upgraded when it registers with a new boot id, and DONE once it runs the
  target kernel (and filesystem spec) and its mounts stayed OK for the soak;
- a host back on an old kernel, or a lockup in the soak, FAILS it and pauses
  the plan.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from controller.failover import engine
from controller.failover.model import ClusterState, FailoverState, GroupView, Trigger
from controller.upgrades.kernelversion import at_least
from hangwatch.errors import UpgradeRefused


class PlanHostState(enum.Enum):
    PENDING = "PENDING"
    DRAINING = "DRAINING"
    UPGRADING = "UPGRADING"
    VERIFYING = "VERIFYING"
    DONE = "DONE"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"

    @property
    def in_progress(self) -> bool:
        return self in (PlanHostState.DRAINING, PlanHostState.UPGRADING, PlanHostState.VERIFYING)

    @property
    def finished(self) -> bool:
        return self in (PlanHostState.DONE, PlanHostState.SKIPPED)


class PlanState(enum.Enum):
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    ABORTED = "ABORTED"
    DONE = "DONE"

    @property
    def over(self) -> bool:
        return self in (PlanState.ABORTED, PlanState.DONE)


@dataclass(frozen=True)
class PlanHost:
    host_id: str
    state: PlanHostState = PlanHostState.PENDING
    detail: str = ""
    updated_at: float = 0.0
    kernel_release: str = ""
    # When the host left PENDING, and the boot it was on: another boot id means rebooted.
    started_at: float | None = None
    start_boot_id: str = ""
    # Start of the clean soak on the new boot (None until its first clean heartbeat).
    soak_since: float | None = None
    # Per mount the target_fs applies to: "xfs:v5" when reached, else what it has.
    mounts_fs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Plan:
    name: str
    target_kernel: str
    target_fs: str
    state: PlanState
    soak_seconds: float
    created_at: float
    created_by: str
    hosts: tuple[PlanHost, ...]
    detail: str = ""

    @property
    def percent_done(self) -> float:
        done = sum(h.state.finished for h in self.hosts)
        return 100.0 * done / len(self.hosts) if self.hosts else 100.0


@dataclass(frozen=True)
class HostFacts:
    """What a host last registered, beyond the failover view."""

    host_id: str
    boot_id: str
    kernel: str
    # Boot id the last heartbeat carried: health counts only from the current boot.
    heartbeat_boot_id: str = ""
    # mount -> (fs_type, fs_features)
    mounts: Mapping[str, tuple[str, Mapping[str, str]]] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Switch:
    """A failover as the planner needs it: which ones drained whom, and how they ended."""

    id: str
    group: str
    state: FailoverState
    trigger: Trigger
    from_host: str
    created_at: float


@dataclass(frozen=True)
class World:
    cluster: ClusterState
    hosts: Mapping[str, HostFacts]
    switches: tuple[Switch, ...] = ()
    # Hosts other plans have in progress: they count for the one-per-group rule.
    busy_elsewhere: frozenset[str] = frozenset()
    max_parallel: int = 1


@dataclass(frozen=True)
class StartSwitchover:
    group: str
    from_host: str
    to_host: str
    reason: str


# ---- the filesystem side ----

_FS_SPEC = re.compile(r"^([a-z0-9]+):([A-Za-z0-9_.-]+)(?:=([A-Za-z0-9_.,:-]+))?$")


@dataclass(frozen=True)
class FsSpec:
    """`TYPE:vN` (fs_features version), `TYPE:KEY=VALUE`, or `TYPE:FEATURE` (present)."""

    text: str
    fs_type: str
    key: str
    value: str | None

    def reached(self, features: Mapping[str, str]) -> bool:
        if self.value is not None:
            return features.get(self.key) == self.value
        if self.key in features:
            return features[self.key] not in ("", "no", "0")
        return self.key in features.get("driver_features", "").split(",")


def parse_fs_spec(text: str) -> FsSpec:
    """Reads a --target-fs spec; raises ValueError saying what a spec looks like."""
    m = _FS_SPEC.match(text)
    if m is None:
        raise ValueError(
            f"{text[:80]!r} is not a filesystem spec: TYPE:vN (e.g. xfs:v5), "
            "TYPE:KEY=VALUE or TYPE:FEATURE (keys as 'hangwatchctl host show' lists them)"
        )
    fs_type, key, value = m.groups()
    version = re.fullmatch(r"v(\d+)", key)
    if version and value is None:
        return FsSpec(text, fs_type, "version", version.group(1))
    return FsSpec(text, fs_type, key, value)


def mounts_fs(spec: FsSpec | None, facts: HostFacts) -> tuple[tuple[str, str], ...]:
    """Per mount of the spec's type: the spec when reached, else "not yet (TYPE)"."""
    if spec is None:
        return ()
    return tuple(
        (mount, spec.text if spec.reached(features) else f"not yet ({fs_type})")
        for mount, (fs_type, features) in sorted(facts.mounts.items())
        if fs_type == spec.fs_type
    )


def up_to_date(plan: Plan, facts: HostFacts) -> bool:
    spec = parse_fs_spec(plan.target_fs) if plan.target_fs else None
    fs_ok = all(v == plan.target_fs for _, v in mounts_fs(spec, facts))
    return at_least(facts.kernel, plan.target_kernel) and fs_ok


# ---- one pass ----


def step(plan: Plan, world: World) -> tuple[Plan, list[StartSwitchover]]:
    """The plan after looking at the world once, and the switchovers to start."""
    if plan.state.over:
        return plan, []
    hosts = list(plan.hosts)
    actions: list[StartSwitchover] = []
    failed: list[PlanHost] = []
    for i, h in enumerate(hosts):
        if h.state.in_progress:
            hosts[i], acts = _advance(plan, h, world)
            actions += acts
            if hosts[i].state is PlanHostState.FAILED:
                failed.append(hosts[i])
    if plan.state is PlanState.RUNNING and not failed:
        actions += _start_next(plan, hosts, world)
    new = dataclasses.replace(plan, hosts=tuple(hosts))
    if failed:
        names = ", ".join(f"{h.host_id} ({h.detail})" for h in failed)
        return _plan_state(new, PlanState.PAUSED, f"paused: {names} FAILED"), actions
    if all(h.state.finished for h in hosts):
        return _plan_state(new, PlanState.DONE, "every host is done"), actions
    stuck = [h.host_id for h in hosts if h.state is PlanHostState.FAILED]
    if stuck and all(h.state.finished or h.state is PlanHostState.FAILED for h in hosts):
        detail = f"waiting: {', '.join(stuck)} FAILED (mark them PENDING to retry, or SKIPPED)"
        return dataclasses.replace(new, detail=detail), actions
    return new, actions


def _plan_state(plan: Plan, state: PlanState, detail: str) -> Plan:
    return dataclasses.replace(plan, state=state, detail=detail)


def _set(h: PlanHost, now: float, **changes: object) -> PlanHost:
    """A host with changes; updated_at moves only when something did."""
    new = dataclasses.replace(h, **changes)  # type: ignore[arg-type]
    return new if new == h else dataclasses.replace(new, updated_at=now)


def _groups_of(world: World, host: str) -> list[GroupView]:
    return [g for g in world.cluster.groups if host in g.members]


def _start_next(plan: Plan, hosts: list[PlanHost], world: World) -> list[StartSwitchover]:
    """Moves PENDING hosts to DRAINING while capacity and the one-per-group rule allow.

    Hosts that are primary of nothing go first: upgrading standbys before primaries
    gives the primaries an up-to-date standby to switch over to.
    """
    now = world.cluster.now
    busy = {h.host_id for h in hosts if h.state.in_progress} | world.busy_elsewhere
    capacity = world.max_parallel - sum(h.state.in_progress for h in hosts)
    primaries = {g.primary for g in world.cluster.groups}
    order = sorted(
        (i for i, h in enumerate(hosts) if h.state is PlanHostState.PENDING),
        key=lambda i: hosts[i].host_id in primaries,
    )
    actions: list[StartSwitchover] = []
    for i in order:
        h = hosts[i]
        facts = world.hosts.get(h.host_id)
        if facts is None:
            hosts[i] = _set(h, now, detail="waiting: the host has never registered")
            continue
        if up_to_date(plan, facts):
            hosts[i] = _set(
                h,
                now,
                state=PlanHostState.DONE,
                kernel_release=facts.kernel,
                mounts_fs=_mounts_fs(plan, facts),
                detail=f"already on {facts.kernel}",
            )
            continue
        if capacity <= 0:
            hosts[i] = _set(h, now, detail="waiting for a free slot")
            continue
        taken = sorted(
            f"{g.name} ({m})" for g in _groups_of(world, h.host_id) for m in g.members if m in busy
        )
        if taken:
            hosts[i] = _set(h, now, detail=f"waiting: group member busy: {', '.join(taken)}")
            continue
        view = world.cluster.hosts.get(h.host_id)
        if view is None or view.liveness != "HEALTHY":
            hosts[i] = _set(h, now, detail="waiting: the host is not HEALTHY")
            continue
        started = _set(
            h,
            now,
            state=PlanHostState.DRAINING,
            started_at=now,
            start_boot_id=facts.boot_id,
            kernel_release=facts.kernel,
            detail="draining",
        )
        hosts[i], acts = _advance(plan, started, world)
        actions += acts
        busy.add(h.host_id)
        capacity -= 1
    return actions


def _mounts_fs(plan: Plan, facts: HostFacts) -> tuple[tuple[str, str], ...]:
    return mounts_fs(parse_fs_spec(plan.target_fs) if plan.target_fs else None, facts)


def _advance(plan: Plan, h: PlanHost, world: World) -> tuple[PlanHost, list[StartSwitchover]]:
    now = world.cluster.now
    facts = world.hosts.get(h.host_id)
    if facts is None:
        return h, []
    h = _set(h, now, kernel_release=facts.kernel, mounts_fs=_mounts_fs(plan, facts))
    rebooted = facts.boot_id != h.start_boot_id
    if h.state is PlanHostState.DRAINING and not rebooted:
        return _drain(plan, h, world)
    if h.state in (PlanHostState.DRAINING, PlanHostState.UPGRADING):
        if not rebooted:
            return _set(h, now, detail=f"waiting for {h.host_id} to come back on a new boot"), []
        h = _set(
            h, now, state=PlanHostState.VERIFYING, soak_since=None, detail="back on a new boot"
        )
    return _verify(plan, h, facts, world), []


def _drain(plan: Plan, h: PlanHost, world: World) -> tuple[PlanHost, list[StartSwitchover]]:
    now = world.cluster.now
    serving = [g for g in world.cluster.groups if g.primary == h.host_id]
    if not serving:
        return _set(
            h,
            now,
            detail=f"drained: upgrade it, then 'hangwatchctl upgrade mark {plan.name} "
            f"{h.host_id} --state UPGRADING --reason ...' (or just reboot it)",
        ), []
    group = serving[0]
    switches = [s for s in world.switches if s.group == group.name]
    active = next((s for s in switches if s.state.active), None)
    if active is not None:
        return _set(h, now, detail=f"waiting for failover {active.id} of {group.name}"), []
    ours = [
        s
        for s in switches
        if s.trigger is Trigger.UPGRADE
        and s.from_host == h.host_id
        and h.started_at is not None
        and s.created_at >= h.started_at
    ]
    if ours and max(ours, key=lambda s: s.created_at).state is not FailoverState.COMPLETED:
        last = max(ours, key=lambda s: s.created_at)
        return _set(
            h,
            now,
            state=PlanHostState.FAILED,
            detail=f"switchover {last.id} of {group.name} ended {last.state.value}",
        ), []
    target, why = _standby(plan, group, h.host_id, world)
    if not target:
        return _set(h, now, detail=f"waiting: no standby of {group.name} to drain to ({why})"), []
    if plan.state is not PlanState.RUNNING:
        return _set(h, now, detail=f"paused before switching {group.name} to {target}"), []
    reason = f"upgrade plan {plan.name}: draining {h.host_id} for {plan.target_kernel}"
    return _set(h, now, detail=f"switching {group.name} over to {target}"), [
        StartSwitchover(group.name, h.host_id, target, reason)
    ]


def _standby(plan: Plan, group: GroupView, host: str, world: World) -> tuple[str, str]:
    """The best eligible member already on the target, or "" and why there is none."""
    why = []
    for c in engine.candidates(world.cluster, group, exclude=host):
        facts = world.hosts.get(c.host_id)
        if not c.eligible:
            why.append(f"{c.host_id}: {', '.join(c.reasons)}")
        elif facts is None or not up_to_date(plan, facts):
            why.append(f"{c.host_id}: not on the target yet")
        else:
            return c.host_id, ""
    return "", "; ".join(why) or "no other member"


def _verify(plan: Plan, h: PlanHost, facts: HostFacts, world: World) -> PlanHost:
    now = world.cluster.now
    if not at_least(facts.kernel, plan.target_kernel):
        return _set(
            h,
            now,
            state=PlanHostState.FAILED,
            detail=f"came back on {facts.kernel}, not {plan.target_kernel} or newer",
        )
    missing = [m for m, v in h.mounts_fs if v != plan.target_fs]
    if missing:
        return _set(
            h,
            now,
            state=PlanHostState.FAILED,
            detail=f"{', '.join(missing)} not at {plan.target_fs} after the upgrade",
        )
    if facts.heartbeat_boot_id != facts.boot_id:
        return _set(h, now, detail="waiting for the first heartbeat of the new boot")
    view = world.cluster.hosts.get(h.host_id)
    states = dict(view.mounts) if view else {}
    locked = [m for m, s in states.items() if s == "LOCKED"]
    if locked:
        return _set(
            h, now, state=PlanHostState.FAILED, detail=f"locked up in the soak: {', '.join(locked)}"
        )
    trouble = [f"{m} {s}" for m, s in sorted(states.items()) if s != "OK"]
    if view is None or view.liveness != "HEALTHY":
        trouble.insert(0, f"{h.host_id} {view.liveness if view else 'unknown'}")
    if trouble:
        return _set(h, now, soak_since=None, detail=f"soak on hold: {', '.join(trouble)}")
    if h.soak_since is None:
        return _set(
            h, now, soak_since=now, detail=f"soaking {plan.soak_seconds:.0f}s on {facts.kernel}"
        )
    if now - h.soak_since >= plan.soak_seconds:
        return _set(
            h,
            now,
            state=PlanHostState.DONE,
            detail=f"on {facts.kernel}; {plan.soak_seconds:.0f}s soak clean",
        )
    return h


# ---- what people do ----


def set_state(plan: Plan, state: PlanState, actor: str, reason: str) -> Plan:
    """Pause, resume or abort a plan."""
    allowed = {
        PlanState.RUNNING: (PlanState.PAUSED,),
        PlanState.PAUSED: (PlanState.RUNNING,),
        PlanState.ABORTED: (PlanState.RUNNING, PlanState.PAUSED),
    }
    if state not in allowed:
        raise UpgradeRefused(f"a plan can be set RUNNING, PAUSED or ABORTED, not {state.value}")
    if plan.state not in allowed[state]:
        raise UpgradeRefused(
            f"plan {plan.name} is {plan.state.value}: it cannot become {state.value}"
        )
    return _plan_state(plan, state, f"{state.value.lower()} by {actor}: {reason}")


def mark(
    plan: Plan,
    host_id: str,
    state: PlanHostState,
    actor: str,
    reason: str,
    now: float,
    facts: HostFacts | None,
    primary_of: tuple[str, ...],
) -> Plan:
    """Records a step people did by hand (or a verdict) for one host."""
    if plan.state.over:
        raise UpgradeRefused(f"plan {plan.name} is {plan.state.value}")
    index = next((i for i, h in enumerate(plan.hosts) if h.host_id == host_id), None)
    if index is None:
        raise UpgradeRefused(f"{host_id} is not in plan {plan.name}")
    h = plan.hosts[index]
    detail = f"marked {state.value} by {actor}: {reason}"
    if state in (PlanHostState.DRAINING, PlanHostState.VERIFYING):
        raise UpgradeRefused(f"the controller moves hosts to {state.value} itself")
    if state is h.state:
        raise UpgradeRefused(f"{host_id} is already {state.value}")
    if state is PlanHostState.UPGRADING:
        if h.state not in (PlanHostState.DRAINING, PlanHostState.FAILED):
            raise UpgradeRefused(
                f"{host_id} is {h.state.value}: only a drained host can be UPGRADING"
            )
        if primary_of:
            raise UpgradeRefused(
                f"{host_id} is still primary of {', '.join(primary_of)}: wait for the drain"
            )
        if facts is None:
            raise UpgradeRefused(f"{host_id} has never registered")
        new = dataclasses.replace(
            h, state=state, start_boot_id=facts.boot_id, soak_since=None, detail=detail
        )
    elif state is PlanHostState.PENDING:
        if h.state not in (PlanHostState.FAILED, PlanHostState.SKIPPED):
            raise UpgradeRefused(
                f"{host_id} is {h.state.value}: only FAILED or SKIPPED can be retried"
            )
        new = PlanHost(host_id, detail=detail)
    else:  # DONE, FAILED, SKIPPED: a verdict
        new = dataclasses.replace(h, state=state, detail=detail)
    hosts = list(plan.hosts)
    hosts[index] = dataclasses.replace(new, updated_at=now)
    return dataclasses.replace(plan, hosts=tuple(hosts))
