"""What each kind of webhook sink is sent: pure functions from an event to an HTTP request.

Kept apart from the delivery loop so each format can be checked without a network.
The generic json sink is signed the Standard Webhooks way: `webhook-id` (the event id,
the same on every retry), `webhook-timestamp` (Unix seconds of this attempt) and
`webhook-signature` (space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
one per key in force, so a receiver holding either key of a rotation accepts it).
A receiver refuses a timestamp outside its replay window (`verify`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hangwatch import __version__
from hangwatch.messages import to_dict
from hangwatch.v1 import types_pb2 as pb

ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = (
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
)
# Standard Webhooks' recommended tolerance either side of the receiver's clock.
REPLAY_WINDOW_SECONDS = 300
SECRET_PREFIX = "whsec_"

# The one spelling of severities, as configs, payloads, PagerDuty and Alertmanager use it.
SEVERITY = {
    pb.SEVERITY_INFO: "info",
    pb.SEVERITY_WARNING: "warning",
    pb.SEVERITY_ERROR: "error",
    pb.SEVERITY_CRITICAL: "critical",
}
SEVERITY_VALUE = {name: value for value, name in SEVERITY.items()}

# Failover events that ask a person for something.
WAITING_KINDS = frozenset({"FAILOVER_PROPOSED", "FAILOVER_RETARGETED"})
STUCK_KINDS = frozenset({"FAILOVER_FENCE_FAILED", "FAILOVER_FAILED"})


@dataclass(frozen=True)
class Payload:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    # Appended to the sink's URL (an API's resource under its base URL).
    path: str = ""


def severity(event: pb.Event) -> str:
    return SEVERITY.get(event.severity, "info")


def needs_people(event: pb.Event) -> bool:
    """Lockups, failovers waiting for a person or stuck, and restorations: what a chat
    channel is told by default (not every INFO and pressure reading)."""
    if event.kind in WAITING_KINDS:
        return event.notice.needs_approval
    return event.kind in ("LOCKUP_CONFIRMED", "SERVICE_RESTORED") or event.kind in STUCK_KINDS


def waiting(event: pb.Event) -> bool:
    """A failover that waits for a person: approval, or confirmation that a host is off."""
    return (
        event.kind in WAITING_KINDS and event.notice.needs_approval
    ) or event.kind == "FAILOVER_FENCE_FAILED"


def document(event: pb.Event) -> dict[str, Any]:
    """The event with `hangwatchctl -o json`'s keys, severity spelled as in the config."""
    doc = to_dict(event)
    doc["severity"] = severity(event)
    return doc


def json_body(document: Mapping[str, Any] | Sequence[Any], idempotency_key: str) -> Payload:
    body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return Payload(
        body,
        {
            "Content-Type": "application/json",
            "User-Agent": f"hangwatch/{__version__}",
            # Each event once: a receiver drops a repeat of a key it has seen.
            "Idempotency-Key": idempotency_key,
        },
    )


def signing_key(secret: bytes) -> bytes:
    """A `whsec_` secret carries its key in base64; any other is used as it is."""
    if secret.startswith(SECRET_PREFIX.encode()):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            return secret
    return secret


def signatures(secrets: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(signing_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets
    )


def signed(payload: Payload, msg_id: str, secrets: Sequence[bytes], now: float) -> Payload:
    """The payload with this attempt's timestamp and signatures."""
    timestamp = int(now)
    headers = {
        **payload.headers,
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signatures(secrets, msg_id, timestamp, payload.body),
    }
    return dataclasses.replace(payload, headers=headers)


def verify(
    secrets: Sequence[bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    window: float = REPLAY_WINDOW_SECONDS,
) -> bool:
    """What a receiver checks: a timestamp within the replay window and one signature
    made with one of its keys (constant-time)."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, timestamp = lower[ID_HEADER], int(lower[TIMESTAMP_HEADER])
        offered = lower[SIGNATURE_HEADER].split()
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > window:
        return False
    expected = signatures(secrets, msg_id, timestamp, body).split()
    return any(hmac.compare_digest(e, o) for e in expected for o in offered)


def json_payload(event: pb.Event) -> Payload:
    """The generic sink's body (signed per attempt by the worker, see `signed`)."""
    return json_body(document(event), event.id)


# Slack (Block Kit).


def escape(text: str) -> str:
    """Slack's three control characters in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


HEADLINES = {
    "LOCKUP_CONFIRMED": "Lockup confirmed",
    "FAILOVER_PROPOSED": "Failover proposed",
    "FAILOVER_RETARGETED": "Failover retargeted",
    "FAILOVER_FENCE_FAILED": "Fencing failed",
    "FAILOVER_FAILED": "Failover failed",
    "FAILOVER_APPROVED": "Failover approved",
    "FAILOVER_COMPLETED": "Failover completed",
    "SERVICE_RESTORED": "Service restored",
}


def one_line(event: pb.Event) -> str:
    where = f"{event.host_id}:{event.mount}" if event.mount else event.host_id
    return f"[{severity(event).upper()}] {where} {event.kind}: {event.summary}"


def slack_payload(event: pb.Event, link: str = "") -> Payload:
    """A Block Kit message (with a plain fallback text): what happened, where, and for a
    failover waiting on someone, the command to run."""
    headline = HEADLINES.get(event.kind, event.kind.replace("_", " ").capitalize())
    if waiting(event) and event.kind in WAITING_KINDS:
        headline = "Failover waits for approval"
    n = event.notice
    facts = [f"*Severity:* {severity(event)}", f"*Host:* {escape(event.host_id)}"]
    if event.mount:
        facts.append(f"*Mount:* {escape(event.mount)}")
    if n.group or event.groups:
        facts.append(f"*Group:* {escape(n.group or event.groups[0])}")
    if n.incident_id:
        facts.append(f"*Incident:* {n.incident_id}")
    if n.needs_approval:
        rule = ", two-person rule" if n.two_person_rule else ""
        facts.append(f"*Approver:* role {escape(n.approver_role)}{rule}")
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"*{headline}*\n{escape(event.summary)}"},
        },
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts]},
    ]
    if n.next_step:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*Next:* `{escape(n.next_step)}`"},
            }
        )
    if link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the failover"},
                        "url": link,
                    }
                ],
            }
        )
    return json_body({"text": escape(one_line(event)), "blocks": blocks}, event.id)


def retryable(status: int) -> bool:
    """PagerDuty's rule, fit for any receiver: throttling and server errors pass."""
    return status == 429 or status >= 500
