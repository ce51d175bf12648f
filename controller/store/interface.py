"""What the controller keeps, as an interface with one job per method.

SQLite is the embedded default (`controller.store.sqlite.store`); a set of controllers
for high availability plugs in an etcd store behind the same interface. Nothing
above this layer knows which one it talks to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from controller.audit import AuditRow
from controller.failover.machine import Failover
from controller.store.condition import StoreCondition
from controller.upgrades.drafts import Draft, Sighting
from controller.upgrades.planner import Plan
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb

# The kinds of a lockup's health transitions (lockup_signals reads them).
LOCKUP_KINDS = ("LOCKUP_SUSPECTED", "LOCKUP_CONFIRMED", "LOCKUP_RECOVERING", "LOCKUP_CLEARED")


@dataclass(frozen=True)
class HostRecord:
    host_id: str
    boot_id: str
    agent_version: str
    registered_at: float
    last_heartbeat_at: float | None
    registration: agent_pb.RegisterRequest
    last_heartbeat: agent_pb.HeartbeatRequest | None
    # Why the host is not a failover target until cleared ("" when it is).
    needs_clear: str = ""


@dataclass(frozen=True)
class GroupRow:
    name: str
    primary: str
    epoch: int
    auto_blocked_until: float | None


# How many of the newest failovers policy looks at (the storm limits' window).
POLICY_FAILOVERS = 200


@dataclass(frozen=True)
class FailoverCommit:
    """Everything one failover step changes, written in one transaction."""

    failover: Failover
    epoch: tuple[str, int] | None = None
    primary: tuple[str, str] | None = None
    auto_blocked_until: tuple[str, float | None] | None = None
    needs_clear: tuple[str, str] | None = None
    # (host, command) pairs to queue for the hosts' Commands streams.
    commands: tuple[tuple[str, pb.Command], ...] = ()
    # (actor, role, action, detail) of the audit entry the step writes.
    audit: tuple[str, str, str, str] | None = None
    # Called in the transaction with the newest POLICY_FAILOVERS stored failovers
    # (before this step); a non-empty answer refuses the step (PolicyHold).
    guard: Callable[[Sequence[Failover]], str] | None = None


@dataclass(frozen=True)
class MaintenanceRow:
    scope: str
    target: str
    reason: str
    set_by: str
    set_at: float
    until: float | None


@dataclass(frozen=True)
class DeadLetterRow:
    id: int
    sink: str
    event_id: str
    attempts: int
    last_error: str
    failed_at: float
    # The event's position in the log, to fetch it for a resend.
    cursor: int


@dataclass(frozen=True)
class IncidentRow:
    id: str
    group: str
    host_id: str
    # The first signal of the lockup that opened it: what customers saw, not the proposal.
    started_at: float
    # Closed: the group is served by a healthy primary and no failover of it is open.
    ended_at: float | None
    summary: str
    mount: str = ""
    kernel: str = ""
    fs_type: str = ""
    # Served again (a promote done, or the lockup cleared): the end of what customers saw.
    restored_at: float | None = None


@dataclass(frozen=True)
class AdvisoryRow:
    id: str
    kernel_range: str
    fs_type: str
    reason: str
    url: str
    created_at: float
    created_by: str


class Store(Protocol):
    # Whether writes currently fail for lack of space.
    condition: StoreCondition

    def close(self) -> None: ...

    # Hosts.
    def register_host(self, request: agent_pb.RegisterRequest, now: float) -> None:
        """Creates or refreshes a host's record; the host keeps its history."""

    def record_heartbeat(self, request: agent_pb.HeartbeatRequest, now: float) -> bool:
        """Stores the latest health summary; False when the host is unknown."""

    def get_host(self, host_id: str) -> HostRecord | None: ...

    def list_hosts(self, after: str = "", limit: int | None = None) -> list[HostRecord]:
        """Hosts by host_id, those after `after` (a page), at most `limit`."""

    def remove_host(self, host_id: str) -> bool:
        """Forgets a retired host (registration, heartbeat, needs-clear mark); its events
        stay. False when the host is unknown."""

    # Events.
    def add_events(self, events: Sequence[pb.Event], now: float) -> list[pb.Event]:
        """Stores each event id once, durably, before returning; returns the events this
        call stored (ids not seen before), with their cursor and received_at, in order."""

    def list_events(
        self,
        flt: admin_pb.EventFilter,
        since_cursor: int,
        limit: int,
        newest_first: bool = False,
        hosts: Sequence[str] | None = None,
        before_cursor: int = 0,
    ) -> list[pb.Event]:
        """Events with since_cursor < cursor (< before_cursor, unless 0) that match `flt`,
        by cursor, at most `limit`; `flt.group` is the caller's to resolve into `hosts`
        (the group's members), which restricts them. A record that cannot be shown is
        left out and not counted (controller.store.readable)."""

    def prune_events(self, before: float, keep: int, sinks: Sequence[str], batch: int) -> int:
        """Deletes up to `batch` of the oldest events received before `before` or beyond
        the newest `keep`, except the newest, those sinks have yet to hand off and those
        dead letters name; returns how many."""

    def last_host_seq(self, host_id: str) -> int: ...

    def last_cursor(self) -> int: ...

    # Groups, failovers and their commands.
    def seed_groups(self, groups: Sequence[tuple[str, str]]) -> None: ...

    def groups(self) -> dict[str, GroupRow]: ...

    def set_auto_blocked_until(self, group: str, until: float | None) -> None: ...

    def raise_group_epoch(
        self, group: str, epoch: int, audit: tuple[str, str, str, str], now: float
    ) -> bool:
        """Sets the group's epoch to `epoch` if it is lower, with its audit entry (actor,
        role, action, detail), in one transaction; False when it was not lower."""

    def commit_failover(self, change: FailoverCommit, now: float) -> None:
        """Writes a failover step and everything it changes in one transaction."""

    def get_failover(self, failover_id: str) -> Failover | None: ...

    def list_failovers(
        self,
        group: str = "",
        active_only: bool = False,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[Failover]:
        """Newest first, by (created_at, id); those before `before` (a page)."""

    def pending_commands(self, host_id: str) -> list[pb.Command]: ...

    def record_command_result(self, result: pb.CommandResult, now: float) -> bool: ...

    def command_results(self, ids: Sequence[str]) -> dict[str, pb.CommandResult]: ...

    def record_fence_result(self, failover_id: str, ok: bool, detail: str, now: float) -> None: ...

    def failover_counts(self) -> dict[tuple[str, str], int]:
        """How many failovers each (group, state) has (for metrics)."""

    def fence_result(self, failover_id: str) -> tuple[bool, str] | None: ...

    # Audit.
    def append_audit(
        self,
        at: float,
        actor: str,
        role: str,
        action: str,
        target: str,
        detail: str,
        allowed: bool = True,
    ) -> AuditRow: ...

    def list_audit(self, since_seq: int = 0, limit: int = 1000) -> list[AuditRow]: ...

    def last_audit_seq(self) -> int:
        """The newest entry's seq (0 when the log is empty)."""

    # Operations.
    def set_maintenance(
        self,
        scope: str,
        target: str,
        enabled: bool,
        reason: str,
        actor: str,
        until: float | None,
        now: float,
    ) -> None: ...

    def list_maintenance(self, now: float) -> list[MaintenanceRow]: ...

    def get_setting(self, key: str, default: str) -> str: ...

    def set_setting(self, key: str, value: str) -> None: ...

    def set_needs_clear(self, host_id: str, reason: str) -> bool: ...

    # Incidents.
    def open_incident(
        self,
        incident_id: str,
        group: str,
        host_id: str,
        at: float,
        summary: str,
        mount: str = "",
        kernel: str = "",
        fs_type: str = "",
    ) -> None: ...

    def restore_incident(self, incident_id: str, at: float) -> None:
        """Records when service came back (once; a later call changes nothing)."""

    def close_incident(self, incident_id: str, at: float) -> None: ...

    def lockup_signals(
        self, host_id: str, mount: str, before_cursor: int, limit: int
    ) -> list[pb.Event]:
        """The host's LOCKUP_* events on `mount` before `before_cursor` (0: all), newest
        first: where the lockup that ends in a confirmation began."""

    def open_incident_for(self, group: str) -> IncidentRow | None: ...

    def list_incidents(
        self,
        open_only: bool = False,
        limit: int = 100,
        before: tuple[float, str] | None = None,
    ) -> list[IncidentRow]:
        """Newest first, by (started_at, id); those before `before` (a page)."""

    def get_incident(self, incident_id: str) -> IncidentRow | None: ...

    # Webhooks.
    def start_webhook(self, sink: str) -> int:
        """The sink's last handed-off cursor; a new sink starts at the end of the log."""

    def set_webhook_cursor(self, sink: str, cursor: int) -> None: ...

    def add_dead_letter(
        self, sink: str, event_id: str, attempts: int, error: str, at: float, cursor: int
    ) -> None:
        """Records a failed delivery and moves the sink's cursor past it, atomically."""

    def list_dead_letters(
        self, sink: str = "", after_id: int = 0, limit: int | None = None
    ) -> list[DeadLetterRow]:
        """Dead letters not requeued, by id; those after `after_id` (a page)."""

    def dead_letter_counts(self) -> dict[str, int]:
        """Dead letters kept per sink, requeued ones included (delivered ones are gone)."""

    def requeue_dead_letters(self, sink: str, ids: Sequence[int], at: float) -> int: ...

    def requeued_dead_letters(self, sink: str) -> list[DeadLetterRow]: ...

    def settle_dead_letter(
        self, letter_id: int, delivered: bool, attempts: int, error: str, at: float
    ) -> None: ...

    def alert_key(self, sink: str, host_id: str, mount: str) -> str | None: ...

    def set_alert_key(self, sink: str, host_id: str, mount: str, key: str | None) -> None: ...

    def remote_id(self, sink: str, key: str) -> str | None:
        """The id the sink's receiver gave to what it created for `key`."""

    def set_remote_id(self, sink: str, key: str, remote_id: str) -> None: ...

    # Advisories and upgrade plans.
    def add_advisory(self, row: AdvisoryRow) -> bool:
        """False when an advisory with that id exists (nothing is changed)."""

    def list_advisories(self) -> list[AdvisoryRow]: ...

    def remove_advisory(self, advisory_id: str) -> bool: ...

    def create_plan(self, plan: Plan, now: float) -> bool:
        """False when a plan with that name exists (nothing is changed)."""

    def save_plan(
        self, plan: Plan, now: float, audit: tuple[str, str, str, str] | None = None
    ) -> None:
        """Writes a plan's new state and its audit entry (actor, role, action, detail) at once."""

    def get_plan(self, name: str) -> Plan | None: ...

    def list_plans(self, open_only: bool = False) -> list[Plan]: ...

    # Lockup fingerprints and the advisory drafts they make.
    def add_sighting(self, sighting: Sighting) -> bool:
        """False when the event was sighted already (nothing is changed)."""

    def list_sightings(self, fingerprint: str = "") -> list[Sighting]:
        """Every sighting (of one fingerprint, if given), oldest first."""

    def add_draft(self, draft: Draft, audit: tuple[str, str, str, str] | None = None) -> bool:
        """Writes a new draft and its audit entry (actor, role, action, detail) at once;
        False when a draft with that id exists (nothing is changed)."""

    def get_draft(self, draft_id: str) -> Draft | None: ...

    def list_drafts(self, open_only: bool = False) -> list[Draft]:
        """Drafts, oldest first."""

    def decide_draft(
        self,
        draft: Draft,
        advisory: AdvisoryRow | None,
        audit: tuple[str, str, str, str] | None = None,
    ) -> bool:
        """Writes a decided draft, the advisory an accepted one becomes and the audit entry
        at once, if the stored draft is still open and no advisory has that id; else
        False (nothing is changed)."""
