"""PagerDuty Events API v2 (pure): one alert per incident, through its whole life.

trigger at the lockup, trigger again (severity critical: a high-urgency page with the
command to run) when a failover waits for approval or fencing failed, acknowledge
when a person approves, resolve when service is restored. Every message of one
incident carries the same dedup_key: the incident id, which the lockup's page already
knows because the incident id is derived from the lockup's first signal.
A lockup that opens no incident (on a standby) is its own alert, resolved when it
clears.
"""

from __future__ import annotations

import datetime
from typing import Any

from controller.notify.payloads import Payload, document, json_body, one_line, severity, waiting
from hangwatch import pbtime
from hangwatch.v1 import types_pb2 as pb

SUMMARY_MAX = 1024
DEDUP_MAX = 255
# Failover ends that resolve a failover's own alert (one with no incident).
ENDED = frozenset({"FAILOVER_COMPLETED", "FAILOVER_REJECTED", "FAILOVER_CANCELLED"})


def action(event: pb.Event) -> str | None:
    """What the event does to its alert; None: PagerDuty is not told."""
    kind = event.kind
    if event.notice.planned:
        return None
    if kind == "LOCKUP_CONFIRMED" or waiting(event) or kind == "FAILOVER_FAILED":
        return "trigger"
    if kind == "FAILOVER_APPROVED":
        return "acknowledge"
    if kind in ("LOCKUP_CLEARED", "SERVICE_RESTORED"):
        return "resolve"
    if kind in ENDED and not event.notice.incident_id:
        return "resolve"
    return None


def notice_key(event: pb.Event) -> str:
    """The alert of a controller event: its incident's, else its failover's own."""
    return event.notice.incident_id or event.notice.failover_id


def payload(
    event: pb.Event, routing_key: str, act: str, dedup_key: str, group: str, link: str
) -> Payload:
    message: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": act,
        "dedup_key": dedup_key[:DEDUP_MAX],
    }
    if act == "trigger":
        occurred = datetime.datetime.fromtimestamp(pbtime.seconds(event.occurred_at), datetime.UTC)
        details = document(event)
        details.pop("summary", None)
        summary = one_line(event)
        if event.notice.next_step:
            summary += f" | next: {event.notice.next_step}"
        message["payload"] = {
            "summary": summary[:SUMMARY_MAX],
            "source": event.host_id,
            "severity": severity(event),
            "timestamp": occurred.isoformat(),
            "component": event.mount,
            "group": group,
            "class": event.kind,
            "custom_details": details,
        }
        message["client"] = "hangwatch"
        if link:
            message["client_url"] = link
            message["links"] = [{"href": link, "text": f"failover {event.notice.failover_id}"}]
    return json_body(message, event.id)
