"""Incidents from recorded facts (pure): their window, their events, their two pages."""

from __future__ import annotations

import dataclasses
import re

from controller.audit import AuditRow
from controller.failover.machine import Failover, Step
from controller.failover.model import FailoverState, Trigger
from controller.incidents import notices, statuspage, window
from controller.incidents.report import markdown, timeline
from controller.store.interface import IncidentRow
from hangwatch import pbtime
from hangwatch.ids import is_ulid
from hangwatch.v1 import types_pb2 as pb

START = 1_598_553_240.0  # 2020-08-27 18:34:00 UTC, the incident report's start
APPROVAL = notices.Approval("approver", two_person=True)


def event(
    kind: str, at: float, host: str = "mail1", mount: str = "/srv/mail", **attrs: str
) -> pb.Event:
    ev = pb.Event(
        id=f"E{int(at * 10)}{host}",
        host_id=host,
        mount=mount,
        kind=kind,
        summary=kind.lower(),
        occurred_at=pbtime.timestamp(at),
    )
    ev.evidence.attributes.update(attrs)
    return ev


def failover(*steps: tuple[FailoverState, float, str], **changes: object) -> Failover:
    f = Failover(
        id="01FAIL",
        group="mail-b",
        state=steps[-1][0],
        trigger=Trigger.LOCKUP,
        from_host="mail1",
        to_host="mail2",
        reason="lockup confirmed on mail1:/srv/mail",
        proposed_by="hangwatch",
        created_at=steps[0][1],
        incident_id="01INC",
        steps=tuple(Step(state, at, actor, "detail") for state, at, actor in steps),
    )
    return dataclasses.replace(f, **changes)  # type: ignore[arg-type]


INCIDENT = IncidentRow(
    "01INC",
    "mail-b",
    "mail1",
    START,
    None,
    "lockup confirmed on mail1:/srv/mail",
    mount="/srv/mail",
    kernel="6.1.0-bad",
    fs_type="ext4",
)


# Where an incident starts.


def test_the_first_signal_is_the_earliest_of_the_lockup_going_on_not_of_an_earlier_one():
    newest_first = [
        event("LOCKUP_CONFIRMED", START + 5),
        event("LOCKUP_SUSPECTED", START + 2),
        event("LOCKUP_CLEARED", START - 100),
        event("LOCKUP_SUSPECTED", START - 300),
    ]
    first, floor = window.first_signal(newest_first)
    assert first is newest_first[1]
    assert floor == START - 100
    assert window.first_signal([]) == (None, 0.0)


def test_onset_goes_back_to_the_stuck_probes_start_but_never_into_an_earlier_lockup():
    stuck = event("LOCKUP_SUSPECTED", START + 2, stuck_since=f"{START + 0.5:.3f}")
    assert window.onset(stuck) == START + 0.5
    assert window.onset(stuck, floor=START + 1) == START + 2  # evidence of the one before
    stale = event("LOCKUP_SUSPECTED", START + 200, stuck_since=f"{START:.3f}")
    assert window.onset(stale) == START + 200
    assert window.onset(event("LOCKUP_SUSPECTED", START, stuck_since="soon")) == START


def test_the_incident_id_is_the_same_for_whoever_finds_the_same_first_signal():
    signal = event("LOCKUP_SUSPECTED", START)
    other = event("LOCKUP_SUSPECTED", START, host="mail2")
    assert window.incident_id(signal) == window.incident_id(
        pb.Event.FromString(signal.SerializeToString())
    )
    assert window.incident_id(signal) != window.incident_id(other)
    assert is_ulid(window.incident_id(signal))


# What belongs to it.


def test_its_timeline_holds_its_hosts_mounts_window_and_failovers_only():
    closed = dataclasses.replace(INCIDENT, ended_at=START + 300)
    mine = failover((FailoverState.PROPOSED, START + 6, "hangwatch"))
    earlier = dataclasses.replace(mine, id="01OLD", incident_id="01OTHER")
    forced = dataclasses.replace(
        mine, id="01FORCED", incident_id="", trigger=Trigger.MANUAL, created_at=START + 100
    )
    switchover = dataclasses.replace(forced, id="01PLANNED", trigger=Trigger.SWITCHOVER)
    later = dataclasses.replace(forced, id="01LATER", created_at=START + 900)
    own = window.failovers_of(closed, [mine, earlier, forced, switchover, later], START + 1000)
    assert [f.id for f in own] == ["01FAIL", "01FORCED"]
    hosts = window.hosts_of(closed, own)
    assert hosts == {"mail1", "mail2"}
    events = [
        event("LOCKUP_SUSPECTED", START),
        event("LOCKUP_CLEARED", START - 500),  # the previous incident's
        event("LOCKUP_CONFIRMED", START + 5, host="mail3"),  # not its host
        event("HUNG_TASK", START + 8, mount="/var/other"),  # not its mount
        event("PROMOTE_NOTE", START + 9, host="mail2", mount=""),
        event("LOCKUP_SUSPECTED", START + 600),  # after it closed
    ]
    told = notices.incident_event(notices.INCIDENT_OPENED, closed, START)
    kept = window.events_of(closed, [*events, told], hosts, ["/srv/mail"], START + 1000)
    assert [e.kind for e in kept] == ["LOCKUP_SUSPECTED", "PROMOTE_NOTE"]


def test_service_is_restored_by_a_promote_or_by_the_lockup_clearing_without_one():
    proposed = failover((FailoverState.PROPOSED, START + 6, "hangwatch"))
    done = failover(
        (FailoverState.PROPOSED, START + 6, "hangwatch"),
        (FailoverState.APPROVED, START + 60, "alice"),
        (FailoverState.COMPLETED, START + 65, "hangwatch"),
    )
    assert window.restored_at(INCIDENT, [done], False, START + 70) == START + 65
    assert window.restored_at(INCIDENT, [proposed], False, START + 70) is None
    # Cleared while the proposal still waits: customers are served again.
    assert window.restored_at(INCIDENT, [proposed], True, START + 70) == START + 70
    moving = failover(
        (FailoverState.PROPOSED, START + 6, "hangwatch"),
        (FailoverState.APPROVED, START + 60, "alice"),
    )
    assert window.restored_at(INCIDENT, [moving], True, START + 70) is None
    earlier = dataclasses.replace(INCIDENT, restored_at=START + 30)
    assert window.restored_at(earlier, [done], True, START + 70) == START + 30


def test_its_stage_moves_investigating_identified_monitoring_resolved():
    proposed = failover((FailoverState.PROPOSED, START + 6, "hangwatch"))
    approved = failover(
        (FailoverState.PROPOSED, START + 6, "hangwatch"),
        (FailoverState.APPROVED, START + 60, "alice"),
    )
    assert window.stage(INCIDENT, [proposed]) == "investigating"
    assert window.stage(INCIDENT, [approved]) == "identified"
    restored = dataclasses.replace(INCIDENT, restored_at=START + 65)
    assert window.stage(restored, [approved]) == "monitoring"
    assert window.stage(dataclasses.replace(restored, ended_at=START + 66), []) == "resolved"


# What people are told.


def test_a_held_proposal_asks_for_approval_by_role_with_the_command_to_run():
    f = failover((FailoverState.PROPOSED, START + 6, "hangwatch"))
    f = dataclasses.replace(
        f,
        steps=(Step(FailoverState.PROPOSED, START + 6, "hangwatch", "x; needs approval: manual"),),
    )
    (ev,) = notices.failover_events(f, 0, None, APPROVAL, "/srv/mail")
    assert ev.kind == "FAILOVER_PROPOSED"
    assert ev.severity == pb.SEVERITY_CRITICAL
    assert (ev.host_id, ev.mount, list(ev.groups)) == ("mail1", "/srv/mail", ["mail-b"])
    n = ev.notice
    assert n.needs_approval and n.approver_role == "approver" and n.two_person_rule
    assert (n.incident_id, n.failover_id, n.to_host) == ("01INC", "01FAIL", "mail2")
    assert n.next_step == "hangwatchctl failover approve 01FAIL"
    # Announced again (after a restart): the same id, so it is stored once.
    (again,) = notices.failover_events(f, 0, None, APPROVAL, "/srv/mail")
    assert again.id == ev.id and is_ulid(ev.id)


def test_policy_approved_proposals_ask_nothing_and_only_real_state_changes_are_told():
    f = failover(
        (FailoverState.PROPOSED, START + 6, "hangwatch"),
        (FailoverState.APPROVED, START + 6.1, "hangwatch"),
        (FailoverState.FENCING, START + 6.2, "hangwatch"),
        (FailoverState.FENCING, START + 9, "hangwatch"),  # a note: fencing started
        (FailoverState.FENCE_FAILED, START + 20, "hangwatch"),
    )
    events = notices.failover_events(f, 0, None, APPROVAL, "/srv/mail")
    assert [e.kind for e in events] == [
        "FAILOVER_PROPOSED",
        "FAILOVER_APPROVED",
        "FAILOVER_FENCE_FAILED",
    ]
    assert not events[0].notice.needs_approval
    assert events[2].severity == pb.SEVERITY_CRITICAL
    assert "confirm-fenced 01FAIL --confirm mail1" in events[2].notice.next_step
    assert notices.failover_events(f, 5, "mail2", APPROVAL, "/srv/mail") == []


def test_a_changed_target_is_told_as_a_retarget():
    f = failover(
        (FailoverState.PROPOSED, START + 6, "hangwatch"),
        (FailoverState.APPROVED, START + 60, "alice"),
        to_host="mail3",
    )
    events = notices.failover_events(f, 1, "mail2", APPROVAL, "/srv/mail")
    assert [e.kind for e in events] == ["FAILOVER_RETARGETED", "FAILOVER_APPROVED"]
    assert events[0].notice.to_host == "mail3" and events[0].id != events[1].id


# The two renderings.


def closed_story() -> tuple[IncidentRow, list]:
    incident = dataclasses.replace(INCIDENT, restored_at=START + 82 * 60, ended_at=START + 83 * 60)
    f = failover(
        (FailoverState.PROPOSED, START + 6, "hangwatch"),
        (FailoverState.APPROVED, START + 60, "alice"),
        (FailoverState.COMPLETED, START + 82 * 60, "hangwatch"),
    )
    return incident, [f]


def test_the_internal_report_names_everything_and_times_what_customers_saw():
    incident, failovers = closed_story()
    audit = [
        AuditRow(
            7, START + 60, "alice", "approver", "approve", "mail-b", "01FAIL: ok", True, "x", "y"
        ),
        AuditRow(8, START + 61, "hangwatch", "system", "fence", "mail1", "01FAIL", True, "y", "z"),
    ]
    entries = timeline(incident, [event("LOCKUP_SUSPECTED", START)], failovers, audit)
    assert [e.kind for e in entries] == [
        "INCIDENT_STARTED",
        "LOCKUP_SUSPECTED",
        "FAILOVER_PROPOSED",
        "FAILOVER_APPROVED",
        "DECISION",
        "FAILOVER_COMPLETED",
        "SERVICE_RESTORED",
        "INCIDENT_CLOSED",
    ]
    earlier = dataclasses.replace(INCIDENT, id="01EARLIER", started_at=START - 3 * 3600)
    text = markdown(incident, entries, ["mail1", "mail2"], ["ADV-1"], [earlier], now=START + 9999)
    assert "**Customer-visible duration:** 1 h 22 min" in text
    assert "**First signal:** 2020-08-27 18:34:00 UTC" in text
    assert "mail1:/srv/mail (ext4, kernel 6.1.0-bad)" in text
    assert "alice (approver): approve" in text
    assert "ADV-1" in text and "01EARLIER" in text


def test_the_status_page_tells_customers_in_plain_words_and_names_nothing_internal():
    incident, _ = closed_story()
    story = statuspage.Story(
        incident, "resolved", START + 60, moved=True, known_issue=True, earlier=(START - 10800,)
    )
    who = statuspage.Audience("cluster B", ("IMAP", "POP", "Webmail"))
    text = statuspage.page(story, who, 15)
    assert text.startswith("# Cluster B - IMAP/POP/Webmail\n")
    assert "users of IMAP, POP and Webmail on cluster B may be unable to log in" in text
    assert "Incident Start Time: 08-27-2020 18:34:00 UTC" in text
    assert "Incident End Time: 08-27-2020 19:56:00 UTC" in text
    assert "Total Duration: 1 h 22 min" in text
    assert "known bug in the operating system kernel" in text
    assert "The same issue interrupted service on Aug 27, 2020 at 15:34 UTC." in text
    assert "This incident affected: IMAP, POP and Webmail on cluster B." in text
    stages = re.findall(r"^\*\*(\w+)\*\*", text, re.M)
    assert stages == ["Resolved", "Monitoring", "Identified", "Investigating"]
    for internal in (
        "mail1",
        "mail2",
        "/srv",
        "01INC",
        "01FAIL",
        "ext4",
        "6.1.0",
        "alice",
        "hangwatch",
    ):
        assert internal not in text, internal


def test_the_status_page_grows_with_the_incident():
    who = statuspage.Audience("cluster B")
    story = statuspage.Story(INCIDENT, "investigating", None, moved=False, known_issue=False)
    (first,) = statuspage.updates(story, who, 15)
    assert first.stage == "investigating" and "the services on cluster B" in first.text
    cleared = dataclasses.replace(INCIDENT, restored_at=START + 40)
    later = statuspage.updates(dataclasses.replace(story, incident=cleared), who, 15)
    assert [u.stage for u in later] == ["investigating", "monitoring"]
    assert "recover, which it did without intervention" in later[-1].text
    assert "Next Update: Within 15 mins" in later[-1].text
