"""An incident's timeline and its internal report (pure).

The timeline is assembled from what the controller recorded anyway, keeping only what
belongs to the incident (`controller.incidents.window`): its hosts' lockup events in
its window, its failovers' steps, and people's decisions about them in the audit log.
The internal report names everything (hosts, mounts, ids, who did what) for the
people who handled it; the customer's page is `controller.incidents.statuspage`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from controller.audit import AuditRow
from controller.failover.machine import Failover
from controller.store.interface import IncidentRow
from hangwatch import pbtime
from hangwatch.v1 import types_pb2 as pb

# Event kinds with plain words; others are shown by kind.
EVENT_WORDS = {
    "LOCKUP_SUSPECTED": "storage on {host} started to stall",
    "LOCKUP_CONFIRMED": "storage on {host} stopped responding (lockup confirmed)",
    "LOCKUP_RECOVERING": "storage on {host} started responding again",
    "LOCKUP_CLEARED": "storage on {host} is healthy again",
    "HUNG_TASK": "the kernel on {host} reported tasks blocked on storage",
    "XFS_SHUTDOWN": "the kernel on {host} shut the filesystem down",
    "EXT4_JOURNAL_ABORT": "the kernel on {host} aborted the filesystem journal",
    "MOUNT_READONLY": "the filesystem on {host} went read-only",
}
STEP_WORDS = {
    "PROPOSED": "failover from {src} to {dst} proposed",
    "APPROVED": "failover approved",
    "FENCING": "{src} asked to stop serving",
    "PROMOTING": "{src} out of service; {dst} being promoted",
    "COMPLETED": "service moved to {dst}",
    "REJECTED": "failover rejected",
    "CANCELLED": "failover cancelled",
    "FENCE_FAILED": "{src} could not be fenced automatically; waiting for an operator",
    "FAILED": "failover failed",
    "RECALLING": "{dst} did not confirm its promote; it is taken out of service again",
}


@dataclass(frozen=True)
class Entry:
    at: float
    kind: str
    text: str
    ref: str


def timeline(
    incident: IncidentRow,
    events: Iterable[pb.Event],
    failovers: Iterable[Failover],
    audit: Iterable[AuditRow],
) -> list[Entry]:
    """In time order: the events, failover steps and decisions given (already the
    incident's own: see `window`), and its own start, restoration and close."""
    entries = [Entry(incident.started_at, "INCIDENT_STARTED", "first signal", incident.id)]
    for e in events:
        words = EVENT_WORDS.get(e.kind, e.kind.lower().replace("_", " ") + " on {host}")
        where = words.format(host=e.host_id) + (f" ({e.mount})" if e.mount else "")
        entries.append(Entry(pbtime.seconds(e.occurred_at), e.kind, f"{where}: {e.summary}", e.id))
    ids = set()
    for f in failovers:
        ids.add(f.id)
        for step in f.steps:
            src = f.to_host if step.state.value == "FENCE_FAILED" and f.recalling else f.from_host
            text = STEP_WORDS[step.state.value].format(src=src, dst=f.to_host or "?")
            entries.append(
                Entry(
                    step.at,
                    f"FAILOVER_{step.state.value}",
                    f"{text} ({step.actor}: {step.detail})",
                    f.id,
                )
            )
    for row in audit:
        if row.role not in ("system", "agent") and any(i in row.detail for i in ids):
            entries.append(
                Entry(
                    row.at,
                    "DECISION",
                    f"{row.actor} ({row.role}): {row.action} — {row.detail}",
                    str(row.seq),
                )
            )
    if incident.restored_at is not None:
        entries.append(
            Entry(incident.restored_at, "SERVICE_RESTORED", "service restored", incident.id)
        )
    if incident.ended_at is not None:
        entries.append(Entry(incident.ended_at, "INCIDENT_CLOSED", "incident closed", incident.id))
    return sorted(entries, key=lambda x: x.at)


def utc(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def duration(seconds: float) -> str:
    """Like a person writes it: seconds under a minute, else hours and minutes."""
    if seconds < 60:
        return f"{int(seconds)} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def markdown(
    incident: IncidentRow,
    entries: Sequence[Entry],
    members: Sequence[str],
    advisories: Sequence[str],
    related: Sequence[IncidentRow],
    now: float,
) -> str:
    """The internal report: every name, id and decision, for the people who handled it."""
    end = incident.restored_at if incident.restored_at is not None else now
    state = "closed" if incident.ended_at is not None else "open"
    lines = [
        f"# Incident {incident.id}: {incident.group}",
        "",
        f"- **State:** {state}",
        f"- **Group:** {incident.group} (members {', '.join(members)})",
        f"- **Where:** {incident.host_id}:{incident.mount or '?'}"
        + (f" ({incident.fs_type}, kernel {incident.kernel})" if incident.kernel else ""),
        f"- **Cause:** {incident.summary}",
        f"- **First signal:** {utc(incident.started_at)}",
        "- **Service restored:** "
        + (utc(incident.restored_at) if incident.restored_at is not None else "not yet"),
        f"- **Closed:** {utc(incident.ended_at) if incident.ended_at is not None else 'open'}",
        f"- **Customer-visible duration:** {duration(end - incident.started_at)}"
        + ("" if incident.restored_at is not None else " so far"),
        "",
        "## Timeline",
        "",
    ]
    lines += [f"- {utc(e.at)}: {e.kind}: {e.text}" for e in entries]
    if advisories:
        lines += [
            "",
            "## Known issue",
            "",
            f"{incident.host_id} ran a version covered by {', '.join(advisories)}; hosts on "
            "that version are kept out of failover until upgraded.",
        ]
        if related:
            lines.append("Earlier incidents of the same advisory:")
            lines += [f"- {r.id} on {r.group} ({r.host_id}), {utc(r.started_at)}" for r in related]
    return "\n".join(lines) + "\n"
