"""Incident timelines and the status-page update written from them (pure).

An incident is one lockup on one group, from its first signal to the group being
served by a healthy primary again. Its timeline is assembled from what the
controller recorded anyway: the lockup events of the group's hosts, the failover
steps, and the people's decisions in the audit log. The markdown rendering reads
like a status-page update for customers: what was affected, when, for how long,
and what happened in order, from facts only.
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

# Event kinds worth a line in a timeline, with the plain words for them.
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
    """The incident's entries in time order, from the records that fall in its span."""
    end = incident.ended_at if incident.ended_at is not None else float("inf")
    entries = []
    for e in events:
        at = pbtime.seconds(e.occurred_at)
        words = EVENT_WORDS.get(e.kind)
        if words and incident.started_at - 600 <= at <= end:
            entries.append(Entry(at, e.kind, words.format(host=e.host_id) + f": {e.summary}", e.id))
    ids = set()
    for f in failovers:
        if f.incident_id != incident.id:
            continue
        ids.add(f.id)
        for step in f.steps:
            src = f.to_host if step.state.value == "FENCE_FAILED" and f.recalling else f.from_host
            text = STEP_WORDS[step.state.value].format(src=src, dst=f.to_host)
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
    return sorted(entries, key=lambda x: x.at)


def _utc(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def markdown(
    incident: IncidentRow,
    entries: Sequence[Entry],
    members: Sequence[str],
    advisories: Sequence[str],
    now: float,
) -> str:
    """A status-page update for the incident, like the ones SREs post by hand."""
    resolved = incident.ended_at is not None
    end = incident.ended_at if incident.ended_at is not None else now
    lines = [
        f"# Service interruption: {incident.group}",
        "",
        f"**Status:** {'Resolved' if resolved else 'Investigating'}  ",
        f"**Affected service:** {incident.group} (hosts {', '.join(members)})  ",
        f"**Incident start:** {_utc(incident.started_at)}  ",
        f"**Incident end:** {_utc(end) if resolved else 'ongoing'}  ",
        f"**Total duration:** {_duration(end - incident.started_at)}"
        + ("" if resolved else " so far")
        + "  ",
        f"**Incident ID:** {incident.id}",
        "",
        "## Summary",
        "",
        f"{incident.summary}. "
        + (
            "Service was restored and is running normally."
            if resolved
            else "We are working to restore service."
        ),
        "",
        "## What happened",
        "",
    ]
    lines += [
        f"- {time.strftime('%H:%M:%S', time.gmtime(e.at))} UTC: {e.text}" for e in entries
    ] or ["- (no recorded steps yet)"]
    if advisories:
        lines += [
            "",
            "## Known issue",
            "",
            f"The affected host runs a version covered by {', '.join(advisories)}; "
            "hosts still on that version are kept out of failover until upgraded.",
        ]
    return "\n".join(lines) + "\n"
