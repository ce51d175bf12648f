"""What an incident is, from recorded facts (pure): where it starts, what belongs to
it, when service came back, and where its status page stands.

An incident is what customers saw: it starts at the first signal of the lockup that
caused it (the primary's group mount turning SUSPECT, found by looking back when the
failover is proposed), its service is restored when a promote is done or the lockup
clears without one, and it closes once the group is served by a healthy primary with
no failover open. Its timeline holds its own hosts, mounts, window and failovers only,
so a second lockup of the same group is never mixed into the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from controller.failover.machine import Failover
from controller.failover.model import FailoverState
from controller.store.interface import IncidentRow
from hangwatch import pbtime
from hangwatch.ids import derived_ulid
from hangwatch.v1 import types_pb2 as pb

FIRST_SIGNAL_KINDS = frozenset({"LOCKUP_SUSPECTED", "LOCKUP_CONFIRMED"})
CLEARED = "LOCKUP_CLEARED"
# A stuck probe's start dates a signal back by at most this much (older evidence is
# a previous episode's, kept in the agent's evidence window).
ONSET_LOOKBACK_SECONDS = 30.0
# Failover states in which the old primary is being taken out of service.
MOVING = frozenset({FailoverState.APPROVED, FailoverState.FENCING, FailoverState.PROMOTING})

INVESTIGATING, IDENTIFIED, MONITORING, RESOLVED = (
    "investigating",
    "identified",
    "monitoring",
    "resolved",
)


def first_signal(signals_newest_first: Iterable[pb.Event]) -> tuple[pb.Event | None, float]:
    """The first signal of the lockup going on, from one mount's LOCKUP_* events newest
    first, and the time of the clearing that ended the one before (0 if none)."""
    first = None
    for event in signals_newest_first:
        if event.kind == CLEARED:
            return first, pbtime.seconds(event.occurred_at)
        if event.kind in FIRST_SIGNAL_KINDS:
            first = event
    return first, 0.0


def onset(signal: pb.Event, floor: float = 0.0) -> float:
    """When the signal shows the mount stopped answering: the start of the probe it
    reports stuck (a probe seen stuck after 1 s was issued 1 s before), else its time."""
    at = pbtime.seconds(signal.occurred_at)
    try:
        since = float(signal.evidence.attributes.get("stuck_since", ""))
    except ValueError:
        return at
    return since if max(floor, at - ONSET_LOOKBACK_SECONDS) < since <= at else at


def incident_id(signal: pb.Event, floor: float = 0.0) -> str:
    """The id of the incident this first signal opens: anyone who finds the same signal
    derives the same id (a page sent at the lockup and the incident opened at the
    proposal share one dedup key)."""
    return derived_ulid(onset(signal, floor), f"incident/{signal.id}")


def end(incident: IncidentRow, now: float) -> float:
    return incident.ended_at if incident.ended_at is not None else now


def failovers_of(
    incident: IncidentRow, failovers: Iterable[Failover], now: float
) -> list[Failover]:
    """Its failovers: those linked to it, and unplanned ones of its group made by hand
    while it was open (a forced proposal after a rejection, say)."""
    start, stop = incident.started_at, end(incident, now)
    return [
        f
        for f in failovers
        if f.incident_id == incident.id
        or (
            not f.incident_id
            and f.group == incident.group
            and f.unplanned
            and start <= f.created_at <= stop
        )
    ]


def hosts_of(incident: IncidentRow, failovers: Sequence[Failover]) -> set[str]:
    """The old primary and every host its failovers moved the service to or towards."""
    return {incident.host_id} | {f.to_host for f in failovers if f.to_host}


def events_of(
    incident: IncidentRow,
    events: Iterable[pb.Event],
    hosts: set[str],
    mounts: Sequence[str],
    now: float,
) -> list[pb.Event]:
    """Agents' events on its hosts' group mounts (or host-wide) within its window;
    the controller's own events are told by the failover records instead."""
    start, stop = incident.started_at, end(incident, now)
    return [
        e
        for e in events
        if not e.HasField("notice")
        and e.host_id in hosts
        and (not e.mount or e.mount in mounts)
        and start - 1.0 <= pbtime.seconds(e.occurred_at) <= stop
    ]


def restored_at(
    incident: IncidentRow, failovers: Sequence[Failover], primary_ok: bool, now: float
) -> float | None:
    """When service came back: the first promote done by one of its failovers, or now
    if the lockup cleared on a primary that no failover is taking out of service."""
    if incident.restored_at is not None:
        return incident.restored_at
    done = [s.at for f in failovers for s in f.steps if s.state is FailoverState.COMPLETED]
    if done:
        return min(done)
    if primary_ok and not any(f.state in MOVING for f in failovers):
        return now
    return None


def stage(incident: IncidentRow, failovers: Sequence[Failover]) -> str:
    """Where the status page stands: investigating until a person (or policy) approved
    moving the service, identified while it moves, monitoring once it is restored,
    resolved when closed."""
    if incident.ended_at is not None:
        return RESOLVED
    if incident.restored_at is not None:
        return MONITORING
    if any(s.state is FailoverState.APPROVED for f in failovers for s in f.steps):
        return IDENTIFIED
    return INVESTIGATING
