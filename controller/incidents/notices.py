"""The events the controller makes about failovers and incidents (pure).

Derived from committed failover records (their state and steps), never from the
failover logic itself: each step that a person must act on or know about becomes one
event with a stable id (from the failover id and the step's position), so announcing
a record again after a crash stores nothing twice. They join the agents' events in
the one event log, so WatchEvents and every webhook sink see them.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.failover.machine import Failover, Step
from controller.failover.model import FailoverState, Trigger
from controller.store.interface import IncidentRow
from hangwatch import pbtime
from hangwatch.ids import derived_ulid
from hangwatch.v1 import types_pb2 as pb

PROPOSED = "FAILOVER_PROPOSED"
APPROVED = "FAILOVER_APPROVED"
RETARGETED = "FAILOVER_RETARGETED"
FENCE_FAILED = "FAILOVER_FENCE_FAILED"
FAILED = "FAILOVER_FAILED"
COMPLETED = "FAILOVER_COMPLETED"
REJECTED = "FAILOVER_REJECTED"
CANCELLED = "FAILOVER_CANCELLED"
INCIDENT_OPENED = "INCIDENT_OPENED"
SERVICE_RESTORED = "SERVICE_RESTORED"
INCIDENT_CLOSED = "INCIDENT_CLOSED"

# The step states worth an event, with their kind and severity.
STATE_KINDS = {
    FailoverState.APPROVED: (APPROVED, pb.SEVERITY_WARNING),
    FailoverState.FENCE_FAILED: (FENCE_FAILED, pb.SEVERITY_CRITICAL),
    FailoverState.FAILED: (FAILED, pb.SEVERITY_CRITICAL),
    FailoverState.COMPLETED: (COMPLETED, pb.SEVERITY_INFO),
    FailoverState.REJECTED: (REJECTED, pb.SEVERITY_INFO),
    FailoverState.CANCELLED: (CANCELLED, pb.SEVERITY_INFO),
}
# What the coordinator writes into a proposal that policy did not approve by itself.
HELD = "needs approval"


@dataclass(frozen=True)
class Approval:
    """Who may approve, from the config: the role and the two-person rule."""

    role: str
    two_person: bool


def needs_approval(f: Failover) -> bool:
    """A proposal waits for a person: one made by a person, or one the engine made that
    policy held (a switchover or an upgrade drain is approved as it is made)."""
    if f.trigger in (Trigger.SWITCHOVER, Trigger.UPGRADE):
        return False
    return f.trigger is Trigger.MANUAL or HELD in f.steps[0].detail


def failover_events(
    f: Failover,
    announced: int,
    target: str | None,
    approval: Approval,
    mount: str,
) -> list[pb.Event]:
    """Events for the steps of `f` from index `announced` on; `target` is the target last
    announced (None: unknown), so a changed one is told as a retarget."""
    out = []
    for index in range(announced, len(f.steps)):
        for kind, severity, waiting in _kinds(f, index, target):
            step = f.steps[index]
            name = f"{f.id}/{index}" + ("/retarget" if kind == RETARGETED else "")
            event = _event(
                derived_ulid(step.at, name),
                kind,
                severity,
                f.from_host,
                mount,
                step.at,
                _summary(kind, f, step),
            )
            event.groups.append(f.group)
            n = event.notice
            n.group, n.incident_id, n.failover_id = f.group, f.incident_id, f.id
            n.from_host, n.to_host = f.from_host, f.to_host
            n.proposed_by, n.actor = f.proposed_by, step.actor
            n.planned = not f.unplanned
            if waiting and kind in (PROPOSED, RETARGETED):
                n.needs_approval = True
                n.approver_role, n.two_person_rule = approval.role, approval.two_person
            n.next_step = next_step(kind, f, waiting)
            out.append(event)
    return out


def _kinds(f: Failover, index: int, target: str | None) -> list[tuple[str, int, bool]]:
    """(kind, severity, waits for a person) of the events step `index` stands for."""
    step = f.steps[index]
    waiting = f.state is FailoverState.PROPOSED and needs_approval(f)
    if index == 0:
        return [(PROPOSED, pb.SEVERITY_CRITICAL if waiting else pb.SEVERITY_WARNING, waiting)]
    out: list[tuple[str, int, bool]] = []
    # Only the current target is on record: the newest step is the one that changed it.
    if target is not None and f.to_host != target and index == len(f.steps) - 1:
        out.append((RETARGETED, pb.SEVERITY_CRITICAL if waiting else pb.SEVERITY_WARNING, waiting))
    if step.state in STATE_KINDS and step.state is not f.steps[index - 1].state:
        kind, severity = STATE_KINDS[step.state]
        out.append((kind, severity, step.state is FailoverState.FENCE_FAILED))
    return out


def next_step(kind: str, f: Failover, waiting: bool) -> str:
    """The one command line a person runs next, if one is asked of them."""
    if kind in (PROPOSED, RETARGETED) and waiting:
        if not f.to_host:
            return (
                f"no eligible target: hangwatchctl failover reject {f.id} --reason ..., then "
                f"hangwatchctl failover propose {f.group} --to HOST --force --reason ..."
            )
        return f"hangwatchctl failover approve {f.id}"
    if kind == FENCE_FAILED:
        return (
            f"check {f.from_host} is off, then: hangwatchctl failover confirm-fenced {f.id} "
            f"--confirm {f.from_host} --reason ..."
        )
    if kind == FAILED:
        return f"hangwatchctl failover show {f.id}"
    return ""


def _summary(kind: str, f: Failover, step: Step) -> str:
    move = f"failover of {f.group} from {f.from_host} to {f.to_host or '(no target)'}"
    return {
        PROPOSED: f"{move} proposed: {step.detail}",
        RETARGETED: f"{move}: target changed by {step.actor}: {step.detail}",
        APPROVED: f"{move} approved by {step.actor}",
        FENCE_FAILED: f"{move} stopped: {step.detail}",
        FAILED: f"{move} failed: {step.detail}",
        COMPLETED: f"{move} completed: {step.detail}",
        REJECTED: f"{move} rejected by {step.actor}: {step.detail}",
        CANCELLED: f"{move} cancelled by {step.actor}: {step.detail}",
    }[kind]


def incident_event(
    kind: str, incident: IncidentRow, at: float, advisories: tuple[str, ...] = ()
) -> pb.Event:
    """INCIDENT_OPENED, SERVICE_RESTORED or INCIDENT_CLOSED for `incident` at `at`."""
    severity, text = {
        INCIDENT_OPENED: (pb.SEVERITY_ERROR, f"incident opened: {incident.summary}"),
        SERVICE_RESTORED: (pb.SEVERITY_INFO, f"service of {incident.group} restored"),
        INCIDENT_CLOSED: (pb.SEVERITY_INFO, f"incident on {incident.group} closed"),
    }[kind]
    event = _event(
        derived_ulid(at, f"{incident.id}/{kind}"),
        kind,
        severity,
        incident.host_id,
        incident.mount,
        at,
        text,
    )
    event.groups.append(incident.group)
    event.notice.group = incident.group
    event.notice.incident_id = incident.id
    event.notice.from_host = incident.host_id
    event.notice.actor = "hangwatch"
    event.notice.advisories.extend(advisories)
    return event


def _event(
    event_id: str, kind: str, severity: int, host: str, mount: str, at: float, summary: str
) -> pb.Event:
    return pb.Event(
        id=event_id,
        host_id=host,
        mount=mount,
        kind=kind,
        severity=severity,  # type: ignore[arg-type]
        occurred_at=pbtime.timestamp(at),
        summary=summary,
    )
