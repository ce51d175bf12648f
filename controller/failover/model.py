"""Immutable snapshots the failover logic works on, and its states.

The coordinator builds a `ClusterState` from the store once per pass and hands it
to pure functions; nothing in the decision logic reads a clock, a file or a socket.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class FailoverState(enum.Enum):
    PROPOSED = "PROPOSED"
    APPROVED = "APPROVED"
    FENCING = "FENCING"
    PROMOTING = "PROMOTING"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    FENCE_FAILED = "FENCE_FAILED"
    FAILED = "FAILED"
    RECALLING = "RECALLING"

    @property
    def active(self) -> bool:
        return self not in (
            FailoverState.COMPLETED,
            FailoverState.REJECTED,
            FailoverState.CANCELLED,
            FailoverState.FAILED,
        )


class Trigger(enum.Enum):
    LOCKUP = "LOCKUP"
    UNREACHABLE = "UNREACHABLE"
    MANUAL = "MANUAL"
    SWITCHOVER = "SWITCHOVER"
    UPGRADE = "UPGRADE"


@dataclass(frozen=True)
class Policy:
    # Automatic approval is blocked this long after a failover of the group completed.
    anti_flap_seconds: float = 6 * 3600.0
    # At most this many failovers in progress at once for automatic approval.
    max_concurrent: int = 1
    # At most this share of all groups failed over within the window, automatically.
    max_group_percent: float = 50.0
    window_seconds: float = 3600.0
    # A candidate whose last probe took longer than this ranks after faster ones.
    slow_probe_seconds: float = 1.0


@dataclass(frozen=True)
class HostView:
    host_id: str
    liveness: str  # HEALTHY, STALE, UNREACHABLE
    heartbeat_age: float | None
    # Health per mount, as the host last reported it: OK, SUSPECT, LOCKED, RECOVERING.
    mounts: dict[str, str] = field(default_factory=dict)
    probe_latency: dict[str, float] = field(default_factory=dict)
    maintenance: bool = False
    advisories: tuple[str, ...] = ()
    needs_clear: bool = False
    kernel: str = ""
    # Open advisory drafts that suspect this host's kernel: it stays eligible, but
    # ranks after members on another kernel or filesystem until a person decides.
    suspected: tuple[str, ...] = ()
    # False when its last heartbeat came before this controller started: what it says
    # of the host's health may be out of date.
    heard_since_start: bool = True
    # The highest epoch the host's agent has seen per group.
    epochs: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupView:
    name: str
    members: tuple[str, ...]
    mounts: tuple[str, ...]
    mode: str  # manual | auto
    primary: str
    epoch: int
    auto_blocked_until: float | None = None
    maintenance: bool = False
    # What to do with an old primary that cannot demote (config: frozen_primary).
    frozen_primary: str = "fence"


@dataclass(frozen=True)
class FailoverView:
    id: str
    group: str
    state: FailoverState
    created_at: float
    auto: bool = False
    # An approved switchover waiting for its scheduled time (--at): not yet running.
    waiting: bool = False
    trigger: Trigger | None = None
    to_host: str = ""
    # The pre-failover hook vetoed its automatic approval: a person decides.
    vetoed: bool = False


@dataclass(frozen=True)
class ClusterState:
    now: float
    groups: tuple[GroupView, ...]
    hosts: dict[str, HostView]
    failovers: tuple[FailoverView, ...] = ()
    automation: bool = True
    cluster_maintenance: bool = False
    policy: Policy = field(default_factory=Policy)
    # The controller started recently and agents may still be reconnecting: until then
    # no failover on liveness, or on health reported before the start.
    settling_until: float = 0.0


@dataclass(frozen=True)
class Candidate:
    host_id: str
    eligible: bool
    reasons: tuple[str, ...] = ()
    probe_latency: float | None = None
