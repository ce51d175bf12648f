"""Alerts for Prometheus Alertmanager's `POST /api/v2/alerts` (pure).

Two alerts, identified (as Alertmanager does) by their labels, so the site's routing,
inhibition and silences apply to them like to any other:

- `HangwatchLockup` {group, host, mount, severity="critical"}: fires at a confirmed
  lockup, ends (endsAt = the clearing) when the mount is healthy again;
- `HangwatchFailoverWaiting` {group, host, mount, severity="critical"}: fires while a
  failover waits for a person (approval, or confirmation that a fenced host is off),
  ends at the failover's next step.

A firing alert is sent with endsAt `HOLD_SECONDS` ahead: the sink sends each change
once rather than re-sending every few minutes as Prometheus does, and Alertmanager
would otherwise resolve it after its resolve_timeout.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from controller.notify.payloads import Payload, json_body, waiting
from hangwatch import pbtime
from hangwatch.v1 import types_pb2 as pb

PATH = "/api/v2/alerts"
LOCKUP = "HangwatchLockup"
WAITING = "HangwatchFailoverWaiting"
HOLD_SECONDS = 24 * 3600.0
# Failover steps after which it no longer waits for anyone.
MOVED_ON = frozenset(
    {
        "FAILOVER_APPROVED",
        "FAILOVER_RETARGETED",
        "FAILOVER_COMPLETED",
        "FAILOVER_FAILED",
        "FAILOVER_REJECTED",
        "FAILOVER_CANCELLED",
    }
)


def _time(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(timespec="milliseconds")


def alert(event: pb.Event, group: str, link: str) -> dict[str, Any] | None:
    """The alert the event starts or ends; None: it is not one for Alertmanager."""
    at = pbtime.seconds(event.occurred_at)
    if event.kind in ("LOCKUP_CONFIRMED", "LOCKUP_CLEARED"):
        name, firing = LOCKUP, event.kind == "LOCKUP_CONFIRMED"
    elif waiting(event):
        name, firing = WAITING, True
    elif event.kind in MOVED_ON and not event.notice.planned:
        name, firing = WAITING, False
    else:
        return None
    labels = {
        "alertname": name,
        "group": group,
        "host": event.host_id,
        "mount": event.mount,
        "severity": "critical",
    }
    annotations = {"summary": event.summary}
    n = event.notice
    if firing and n.next_step:
        annotations["next_step"] = n.next_step
    for key in ("incident_id", "failover_id"):
        if getattr(n, key):
            annotations[key] = getattr(n, key)
    out: dict[str, Any] = {"labels": labels, "annotations": annotations}
    # A resolution starts when it ends: Alertmanager keeps the earlier start it knows.
    out["startsAt"] = _time(at)
    out["endsAt"] = _time(at + HOLD_SECONDS if firing else at)
    if link:
        out["generatorURL"] = link
    return out


def payload(event: pb.Event, alert_: dict[str, Any]) -> Payload:
    return dataclasses.replace(json_body([alert_], event.id), path=PATH)
