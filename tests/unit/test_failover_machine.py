"""The failover state machine on its own: fence before promote, idempotent steps."""

from __future__ import annotations

from unittest.mock import ANY

import pytest

from controller.failover.machine import (
    BlockAuto,
    CommandOutcome,
    Failover,
    MarkNeedsClear,
    RunFence,
    SendCommand,
    SetEpoch,
    SetPrimary,
    Timeouts,
    advance,
    approve,
    cancel,
    confirm_fenced,
    reject,
    retarget,
)
from controller.failover.model import Candidate, FailoverState, Trigger
from hangwatch.errors import TransitionRefused

T = Timeouts(demote=10, fence=20, promote=30, anti_flap=3600)
OK = CommandOutcome(True, "exit 0")
BAD = CommandOutcome(False, "exit 1: service would not stop")


def proposed(trigger: Trigger = Trigger.LOCKUP) -> Failover:
    return Failover(
        id="F1",
        group="g",
        state=FailoverState.PROPOSED,
        trigger=trigger,
        from_host="a",
        to_host="b",
        reason="lockup",
        proposed_by="hangwatch",
        created_at=0.0,
    )


def step(
    f: Failover, now: float, results=None, fence=None, fence_configured=True, frozen="", timeouts=T
):
    return advance(
        f,
        now,
        group_epoch=7,
        results=results or {},
        fence_result=fence,
        fence_configured=fence_configured,
        timeouts=timeouts,
        frozen=frozen,
    )


def test_demote_acknowledged_then_promote_then_completed():
    f = approve(proposed(), "alice", 1.0)
    f, actions = step(f, 2.0)
    assert f.state is FailoverState.FENCING and f.epoch == 8
    assert actions == [SetEpoch("g", 8), SendCommand("a", "demote", "F1-demote", 8, "standby")]
    assert step(f, 3.0) == (f, [])  # waiting: nothing new
    f, actions = step(f, 4.0, {"F1-demote": OK})
    assert f.state is FailoverState.PROMOTING
    assert actions == [SendCommand("b", "promote", "F1-promote", 8, "primary")]
    f, actions = step(f, 5.0, {"F1-demote": OK, "F1-promote": OK})
    assert f.state is FailoverState.COMPLETED
    assert actions == [
        SetPrimary("g", "b"),
        MarkNeedsClear("a", actions[1].reason),  # type: ignore[union-attr]
        BlockAuto("g", 5.0 + 3600),
    ]


def test_no_promote_before_demote_or_fence():
    f, _ = step(approve(proposed(), "alice", 1.0), 2.0)
    for now in (3.0, 5.0, 11.9):
        f2, actions = step(f, now)
        assert not any(isinstance(a, SendCommand) and a.action == "promote" for a in actions)
        assert f2.state is FailoverState.FENCING


def test_demote_timeout_fences_then_promotes():
    f, _ = step(approve(proposed(), "alice", 1.0), 2.0)
    f, actions = step(f, 12.5)
    assert actions == [RunFence("a")] and f.fence_started and f.state is FailoverState.FENCING
    assert step(f, 13.0) == (f, [])  # fence running: not started twice
    f, actions = step(f, 14.0, fence=OK)
    assert f.state is FailoverState.PROMOTING
    assert actions[0] == SendCommand("b", "promote", "F1-promote", 8, "primary")


def test_failed_demote_fences_at_once():
    f, _ = step(approve(proposed(), "alice", 1.0), 2.0)
    f, actions = step(f, 3.0, {"F1-demote": BAD})
    assert actions == [RunFence("a")]
    assert "demote failed: exit 1" in f.steps[-1].detail


def test_fence_failure_stops_until_confirmed_by_hand():
    f, _ = step(approve(proposed(), "alice", 1.0), 2.0)
    f, _ = step(f, 12.5)
    f, actions = step(f, 13.0, fence=BAD)
    assert f.state is FailoverState.FENCE_FAILED and actions == []
    assert step(f, 100.0, fence=BAD) == (f, [])
    with pytest.raises(TransitionRefused, match="does not name the old primary"):
        confirm_fenced(f, "bob", "b", "pdu off", 101.0, T)
    f, actions = confirm_fenced(f, "bob", "a", "pdu off", 101.0, T)
    assert f.state is FailoverState.PROMOTING
    assert actions == [SendCommand("b", "promote", "F1-promote", 8, "primary")]
    assert f.steps[-1].actor == "bob"


def test_no_fence_agent_means_fence_failed():
    f, _ = step(approve(proposed(), "alice", 1.0), 2.0)
    f, actions = step(f, 12.5, fence_configured=False)
    assert f.state is FailoverState.FENCE_FAILED and actions == []
    assert "no fence agent is configured for a" in f.steps[-1].detail


def test_fence_that_never_finishes_is_fence_failed():
    f, _ = step(approve(proposed(), "alice", 1.0), 2.0)
    f, _ = step(f, 12.5)
    f, _ = step(f, 40.0)
    assert f.state is FailoverState.FENCE_FAILED


def test_promote_failure_and_timeout_are_failed():
    """Once the target whose promote failed or timed out is demoted again (RECALLING)."""
    f, _ = step(approve(proposed(), "alice", 1.0), 2.0)
    f, _ = step(f, 3.0, {"F1-demote": OK})
    recalling, _ = step(f, 4.0, {"F1-demote": OK, "F1-promote": BAD})
    failed, _ = step(recalling, 5.0, {"F1-promote": BAD, "F1-recall": OK})
    assert failed.state is FailoverState.FAILED
    recalling, _ = step(f, 40.0, {"F1-demote": OK})
    timed_out, _ = step(recalling, 41.0, {"F1-recall": OK})
    assert timed_out.state is FailoverState.FAILED


def test_planned_switchover_does_not_mark_or_block():
    f = approve(proposed(Trigger.SWITCHOVER), "alice", 1.0)
    f, _ = step(f, 2.0)
    f, _ = step(f, 3.0, {"F1-demote": OK})
    f, actions = step(f, 4.0, {"F1-demote": OK, "F1-promote": OK})
    assert actions == [SetPrimary("g", "b")]


def test_scheduled_switchover_waits_for_its_time():
    f = approve(proposed(Trigger.SWITCHOVER), "alice", 1.0)
    f = f.__class__(**{**f.__dict__, "not_before": 50.0})
    assert step(f, 10.0) == (f, [])
    assert step(f, 51.0)[0].state is FailoverState.FENCING


def test_approval_rules():
    with pytest.raises(TransitionRefused, match="two-person rule"):
        approve(
            proposed().__class__(**{**proposed().__dict__, "proposed_by": "alice"}),
            "alice",
            1.0,
            two_person=True,
        )
    no_target = proposed().__class__(**{**proposed().__dict__, "to_host": ""})
    with pytest.raises(TransitionRefused, match="no target"):
        approve(no_target, "alice", 1.0)
    done = approve(proposed(), "alice", 1.0)
    with pytest.raises(TransitionRefused, match="not PROPOSED"):
        approve(done, "bob", 2.0)
    with pytest.raises(TransitionRefused):
        reject(done, "bob", "no", 2.0)
    assert reject(proposed(), "bob", "false alarm", 2.0).state is FailoverState.REJECTED


def test_cancel_only_before_fencing_or_after_it_failed():
    assert cancel(proposed(), "bob", "x", 1.0).state is FailoverState.CANCELLED
    f, _ = step(approve(proposed(), "alice", 1.0), 2.0)
    with pytest.raises(TransitionRefused, match="cancelled only"):
        cancel(f, "bob", "x", 3.0)


def test_approved_failover_fails_if_the_group_moved_since_it_was_proposed():
    f = approve(proposed(), "alice", 1.0)
    moved, actions = advance(
        f,
        2.0,
        group_epoch=8,
        group_primary="c",
        results={},
        fence_result=None,
        fence_configured=True,
        timeouts=T,
    )
    assert moved.state is FailoverState.FAILED and actions == []
    assert "primary is now c, not a" in moved.steps[-1].detail
    same, actions = advance(
        f,
        2.0,
        group_epoch=8,
        group_primary="a",
        results={},
        fence_result=None,
        fence_configured=True,
        timeouts=T,
    )
    assert same.state is FailoverState.FENCING and actions


FROZEN = "lockup confirmed on a:/srv/mail"


def test_a_frozen_primary_is_fenced_at_once_beside_its_demote():
    """A primary whose mount is frozen cannot finish its demote (the hook blocks on the
    mount): the fence starts in the same step as the demote instead of after the whole
    demote deadline. Fails on the old code, which waited the deadline out."""
    f, actions = step(approve(proposed(), "alice", 1.0), 2.0, frozen=FROZEN)
    assert actions == [
        SetEpoch("g", 8),
        SendCommand("a", "demote", "F1-demote", 8, "standby"),
        RunFence("a"),
    ]
    assert f.state is FailoverState.FENCING and f.fence_started
    assert f.deadline == 2.0 + T.fence
    assert f"{FROZEN}: fencing it at once" in f.steps[-1].detail
    f, actions = step(f, 3.0, fence=OK)
    assert f.state is FailoverState.PROMOTING
    assert actions == [SendCommand("b", "promote", "F1-promote", 8, "primary")]


def test_a_primary_that_freezes_while_it_demotes_is_fenced_then():
    f, _ = step(approve(proposed(Trigger.SWITCHOVER), "alice", 1.0), 2.0)
    assert not f.fence_started
    f, actions = step(f, 3.0, frozen=FROZEN)
    assert actions == [RunFence("a")] and f.fence_started
    assert f"{FROZEN}: its demote cannot finish; fencing a" in f.steps[-1].detail


def test_a_frozen_primary_without_a_fence_agent_stops_for_a_person_after_a_short_wait():
    """Without a fence agent, a frozen primary's demote gets the short frozen deadline,
    then the failover stops for a person with the reason."""
    T2 = Timeouts(demote=30, fence=20, promote=30, anti_flap=3600, frozen_demote=5)
    f = approve(proposed(), "alice", 1.0)

    def frozen_step(f: Failover, now: float) -> tuple[Failover, list]:
        return step(f, now, fence_configured=False, frozen=FROZEN, timeouts=T2)

    f, actions = frozen_step(f, 2.0)
    assert f.deadline == 7.0 and not any(isinstance(a, RunFence) for a in actions)
    assert frozen_step(f, 6.9) == (f, [])
    f, actions = frozen_step(f, 7.1)
    assert f.state is FailoverState.FENCE_FAILED and actions == []
    detail = f.steps[-1].detail
    assert FROZEN in detail and "within 5s" in detail
    assert "no fence agent is configured for a" in detail and "confirm-fenced F1" in detail


def test_a_demote_that_gets_through_beside_the_fence_promotes():
    f, _ = step(approve(proposed(), "alice", 1.0), 2.0, frozen=FROZEN)
    promoted, actions = step(f, 3.0, {"F1-demote": OK})
    assert promoted.state is FailoverState.PROMOTING
    assert actions == [SendCommand("b", "promote", "F1-promote", 8, "primary")]
    failed, _ = step(f, 4.0, fence=BAD)
    assert failed.state is FailoverState.FENCE_FAILED
    late, actions = step(failed, 5.0, {"F1-demote": OK}, fence=BAD)
    assert late.state is FailoverState.PROMOTING and "a demoted" in late.steps[-1].detail


def promoting() -> Failover:
    f, _ = step(approve(proposed(), "alice", 1.0), 2.0)
    f, _ = step(f, 3.0, {"F1-demote": OK})
    assert f.state is FailoverState.PROMOTING
    return f


def test_a_timed_out_promote_keeps_the_failover_open_until_the_target_is_demoted():
    """The target may have run (or still run) its promote: it is demoted before the
    failover ends, so no other failover of the group starts while it may be serving.
    Fails on the old code, which went PROMOTING -> FAILED with no action."""
    f, actions = step(promoting(), 40.0)
    assert f.state is FailoverState.RECALLING and f.state.active
    assert actions == [SendCommand("b", "demote", "F1-recall", 8, "standby")]
    assert actions[0].deadline == 40.0 + T.demote  # type: ignore[union-attr]
    assert "b did not report its promote within 30s; b may be serving" in f.steps[-1].detail
    assert step(f, 41.0) == (f, [])
    # Its promote reporting success now changes nothing: the demote is already on its way.
    assert step(f, 41.0, {"F1-promote": OK}) == (f, [])
    done, actions = step(f, 42.0, {"F1-promote": OK, "F1-recall": OK})
    assert done.state is FailoverState.FAILED
    assert "b demoted: exit 0; the failover ends without a new primary" in done.steps[-1].detail
    assert actions == [MarkNeedsClear("b", "its promote in failover F1 failed")]


def test_a_target_that_does_not_demote_again_is_fenced_or_waits_for_a_person():
    recalling, _ = step(promoting(), 4.0, {"F1-promote": BAD})
    assert recalling.fence_host == "b"
    fencing, actions = step(recalling, 15.0)
    assert actions == [RunFence("b")] and fencing.state is FailoverState.RECALLING
    done, _ = step(fencing, 16.0, fence=OK)
    assert done.state is FailoverState.FAILED and "b fenced" in done.steps[-1].detail
    stuck, actions = step(recalling, 15.0, fence_configured=False)
    assert stuck.state is FailoverState.FENCE_FAILED and actions == []
    assert "no fence agent is configured for b" in stuck.steps[-1].detail
    assert "confirm-fenced F1 --confirm b" in stuck.steps[-1].detail
    with pytest.raises(TransitionRefused, match="b may be serving"):
        cancel(stuck, "bob", "never mind", 16.0)
    with pytest.raises(TransitionRefused, match="does not name the target whose promote failed"):
        confirm_fenced(stuck, "bob", "a", "off", 16.0, T)
    confirmed, actions = confirm_fenced(stuck, "bob", "b", "off at the PDU", 16.0, T)
    assert confirmed.state is FailoverState.FAILED and actions[0] == MarkNeedsClear("b", ANY)
    assert not any(isinstance(a, SendCommand) for a in actions)


def test_a_promote_the_target_refused_needs_no_recall():
    refused = CommandOutcome(False, "EXPIRED (exit 0)", ran=False)
    f, actions = step(promoting(), 4.0, {"F1-promote": refused})
    assert f.state is FailoverState.FAILED
    assert "b refused its promote: EXPIRED" in f.steps[-1].detail
    assert not any(isinstance(a, SendCommand) for a in actions)


def test_every_command_carries_the_deadline_of_its_step():
    f, actions = step(approve(proposed(), "alice", 1.0), 2.0)
    assert actions[1].deadline == f.deadline == 2.0 + T.demote  # type: ignore[union-attr]
    f, actions = step(f, 3.0, {"F1-demote": OK})
    assert actions[0].deadline == f.deadline == 3.0 + T.promote  # type: ignore[union-attr]


def test_a_step_is_never_timestamped_before_the_step_it_follows():
    """A pass takes its clock reading before the pre-failover hook runs and the approval
    is written: the demote's step and deadline still count from the approval. Fails on
    the old code, where an 8 s hook left 2 s of a 10 s demote window and FENCING was
    timestamped before APPROVED."""
    approved = approve(proposed(), "hangwatch", 10.0, auto=True)
    f, actions = step(approved, 2.0)
    assert f.steps[-1].state is FailoverState.FENCING and f.steps[-1].at == 10.0
    assert f.deadline == 10.0 + T.demote
    assert actions[1].deadline == 10.0 + T.demote  # type: ignore[union-attr]


def test_a_proposal_is_retargeted_in_place_keeping_its_id_and_incident():
    """An approver points an open proposal at another member (forced past its
    reasons) instead of rejecting it and proposing again. Fails on the old code, which
    had no retarget."""
    f = Failover(**{**proposed().__dict__, "to_host": "", "incident_id": "I1"})
    at_risk = (
        Candidate("b", True, ("at risk: ADV-1",)),
        Candidate("c", False, ("at risk: ADV-1",)),
    )
    moved = retarget(f, "ann", "b", "only b has the data", 5.0, candidates=at_risk, forced=True)
    assert (moved.id, moved.incident_id, moved.state) == ("F1", "I1", FailoverState.PROPOSED)
    assert moved.to_host == "b" and moved.forced and moved.candidates == at_risk
    assert moved.steps[-1].actor == "ann"
    assert moved.steps[-1].detail == (
        "target (none) -> b: only b has the data (forced past: at risk: ADV-1)"
    )
    with pytest.raises(TransitionRefused, match="is the old primary"):
        retarget(f, "ann", "a", "x", 5.0, candidates=at_risk)
    with pytest.raises(TransitionRefused, match="only a PROPOSED one can be retargeted"):
        retarget(approve(moved, "bob", 6.0), "ann", "c", "x", 7.0, candidates=at_risk)
