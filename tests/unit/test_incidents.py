"""Incident timelines and status-page text from recorded facts (pure)."""

from __future__ import annotations

from controller.audit import AuditRow
from controller.failover.machine import Failover, Step
from controller.failover.model import FailoverState, Trigger
from controller.incidents.report import markdown, timeline
from controller.store.interface import IncidentRow
from hangwatch import pbtime
from hangwatch.v1 import types_pb2 as pb

START = 1_598_553_240.0  # 2020-08-27 18:34:00 UTC, the incident report's start


def event(kind: str, at: float, host: str = "mail1") -> pb.Event:
    return pb.Event(
        id=f"E{int(at)}",
        host_id=host,
        kind=kind,
        summary=kind.lower(),
        occurred_at=pbtime.timestamp(at),
    )


def test_timeline_orders_events_steps_and_decisions_and_renders_a_status_page():
    incident = IncidentRow(
        "01INC", "mail-b", "mail1", START, START + 300.0, "lockup confirmed on mail1:/srv/mail"
    )
    failover = Failover(
        id="01FAIL",
        group="mail-b",
        state=FailoverState.COMPLETED,
        trigger=Trigger.LOCKUP,
        from_host="mail1",
        to_host="mail2",
        reason="lockup",
        proposed_by="hangwatch",
        created_at=START + 6,
        incident_id="01INC",
        steps=(
            Step(FailoverState.PROPOSED, START + 6, "hangwatch", "lockup"),
            Step(FailoverState.APPROVED, START + 60, "alice", "approved"),
            Step(FailoverState.COMPLETED, START + 62, "hangwatch", "mail2 promoted"),
        ),
    )
    audit = [
        AuditRow(
            7,
            START + 60,
            "alice",
            "approver",
            "approve",
            "mail-b",
            "01FAIL: approved",
            True,
            "x",
            "y",
        ),
        AuditRow(8, START + 61, "hangwatch", "system", "fence", "mail1", "01FAIL", True, "y", "z"),
    ]
    events = [
        event("LOCKUP_CONFIRMED", START + 5),
        event("PROBE_OK", START + 7),
        event("LOCKUP_CLEARED", START + 9999),
    ]
    entries = timeline(incident, events, [failover], audit)
    assert [e.kind for e in entries] == [
        "LOCKUP_CONFIRMED",
        "FAILOVER_PROPOSED",
        "FAILOVER_APPROVED",
        "DECISION",
        "FAILOVER_COMPLETED",
    ]
    text = markdown(incident, entries, ["mail1", "mail2"], ["ADV-1"], now=START + 400)
    assert "**Status:** Resolved" in text
    assert "**Incident start:** 2020-08-27 18:34:00 UTC" in text
    assert "**Total duration:** 5 min" in text
    assert "18:34:05 UTC: storage on mail1 stopped responding" in text
    assert "service moved to mail2" in text
    assert "alice (approver): approve" in text
    assert "ADV-1" in text


def test_open_incident_says_ongoing():
    incident = IncidentRow("01INC", "mail-b", "mail1", START, None, "lockup")
    text = markdown(incident, [], ["mail1"], [], now=START + 82 * 60)
    assert "**Status:** Investigating" in text
    assert "**Total duration:** 1 h 22 min so far" in text
