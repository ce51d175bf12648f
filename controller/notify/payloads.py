"""What each kind of webhook sink is sent: pure functions from an event to an HTTP body.

Kept apart from the delivery loop so each format can be checked without a network.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from hangwatch import __version__, pbtime
from hangwatch.messages import to_dict
from hangwatch.v1 import types_pb2 as pb

SIGNATURE_HEADER = "X-Hangwatch-Signature"
# PagerDuty Events API v2 limits.
PD_SUMMARY_MAX = 1024
PD_DEDUP_MAX = 255
PD_TRIGGER_KIND = "LOCKUP_CONFIRMED"
PD_RESOLVE_KIND = "LOCKUP_CLEARED"

# Severity names as configs and PagerDuty spell them.
SEVERITY = {
    pb.SEVERITY_INFO: "info",
    pb.SEVERITY_WARNING: "warning",
    pb.SEVERITY_ERROR: "error",
    pb.SEVERITY_CRITICAL: "critical",
}
SEVERITY_VALUE = {name: value for value, name in SEVERITY.items()}


@dataclass(frozen=True)
class Payload:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _payload(document: dict[str, Any], event: pb.Event) -> Payload:
    body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return Payload(
        body,
        {
            "Content-Type": "application/json",
            "User-Agent": f"hangwatch/{__version__}",
            # Each event once: a receiver drops a repeat of a key it has seen.
            "Idempotency-Key": event.id,
        },
    )


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_ok(secret: bytes, body: bytes, header: str) -> bool:
    """What a receiver checks (constant-time)."""
    return hmac.compare_digest(signature(secret, body), header)


def json_payload(event: pb.Event, secret: bytes) -> Payload:
    """The event with `hangwatchctl -o json`'s keys, signed with HMAC-SHA256."""
    payload = _payload(to_dict(event), event)
    payload.headers[SIGNATURE_HEADER] = signature(secret, payload.body)
    return payload


def one_line(event: pb.Event) -> str:
    where = f"{event.host_id}:{event.mount}" if event.mount else event.host_id
    severity = SEVERITY.get(event.severity, "info").upper()
    return f"[{severity}] {where} {event.kind}: {event.summary}"


def slack_payload(event: pb.Event) -> Payload:
    return _payload({"text": one_line(event)}, event)


def pagerduty_action(event: pb.Event) -> str | None:
    """trigger for a confirmed lockup, resolve when it clears; other events are not sent."""
    return {PD_TRIGGER_KIND: "trigger", PD_RESOLVE_KIND: "resolve"}.get(event.kind)


def mount_key(event: pb.Event) -> str:
    """The dedup_key when no incident is open: one alert per host and mount."""
    key = f"{event.host_id}:{event.mount}"
    if len(key) <= PD_DEDUP_MAX:
        return key
    return key[: PD_DEDUP_MAX - 65] + ":" + hashlib.sha256(key.encode()).hexdigest()


def pagerduty_payload(
    event: pb.Event, routing_key: str, action: str, dedup_key: str, group: str
) -> Payload:
    document: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key,
    }
    if action == "trigger":
        occurred = datetime.datetime.fromtimestamp(pbtime.seconds(event.occurred_at), datetime.UTC)
        details = to_dict(event.evidence)
        details.update(event_id=event.id, kind=event.kind)
        document["payload"] = {
            "summary": one_line(event)[:PD_SUMMARY_MAX],
            "source": event.host_id,
            "severity": SEVERITY.get(event.severity, "critical"),
            "timestamp": occurred.isoformat(),
            "component": event.mount,
            "group": group,
            "class": event.kind,
            "custom_details": details,
        }
    return _payload(document, event)


def retryable(status: int) -> bool:
    """PagerDuty's rule, fit for any receiver: throttling and server errors pass."""
    return status == 429 or status >= 500
