"""The agent's command decisions: epochs as fencing tokens, each command id run once."""

from __future__ import annotations

import json

import pytest

from agent.failover.commands import CommandBook, Verdict
from hangwatch.v1 import types_pb2 as pb

HOST = "h1"
NOW = 1_700_000_000.0


def command(
    cid: str, epoch: int, group: str = "mail", action: pb.Action.ValueType = pb.ACTION_DEMOTE
) -> pb.Command:
    return pb.Command(id=cid, group=group, epoch=epoch, action=action, role="standby")


def succeeded(cid: str, epoch: int = 1) -> pb.CommandResult:
    return pb.CommandResult(
        command_id=cid, host_id=HOST, status=pb.COMMAND_STATUS_SUCCEEDED, epoch=epoch
    )


def test_a_new_command_runs_and_raises_the_group_epoch() -> None:
    book = CommandBook(HOST)
    assert book.decide(command("f1-demote", 3), NOW) == (Verdict.RUN, None)
    assert book.epochs == {"mail": 3}


def test_equal_epoch_is_accepted_for_the_other_command_of_a_failover() -> None:
    book = CommandBook(HOST)
    book.decide(command("f1-check", 3, action=pb.ACTION_CHECK), NOW)
    assert book.decide(command("f1-demote", 3), NOW) == (Verdict.RUN, None)
    assert book.epochs == {"mail": 3}


def test_stale_epoch_is_refused_recorded_and_answered_the_same_again() -> None:
    book = CommandBook(HOST)
    book.decide(command("f2-demote", 5), NOW)
    verdict, result = book.decide(command("f1-promote", 4, action=pb.ACTION_PROMOTE), NOW)
    assert verdict is Verdict.REFUSED
    assert result is not None
    assert result.status == pb.COMMAND_STATUS_STALE_EPOCH
    assert (result.command_id, result.host_id) == ("f1-promote", HOST)
    assert (result.epoch, result.known_epoch) == (4, 5)
    assert "stale epoch 4: group mail is at epoch 5" in result.output_tail
    assert book.results["f1-promote"] == result
    assert book.epochs == {"mail": 5}
    assert book.decide(command("f1-promote", 4, action=pb.ACTION_PROMOTE), NOW) == (
        Verdict.ANSWERED,
        result,
    )


def test_epochs_are_per_group() -> None:
    book = CommandBook(HOST)
    book.decide(command("a", 9, group="mail"), NOW)
    assert book.decide(command("b", 1, group="web"), NOW) == (Verdict.RUN, None)
    assert book.epochs == {"mail": 9, "web": 1}


def test_a_recorded_id_is_answered_from_the_record_even_once_its_epoch_is_stale() -> None:
    book = CommandBook(HOST)
    book.decide(command("f1-demote", 1), NOW)
    book.record(succeeded("f1-demote"))
    book.decide(command("f2-demote", 2), NOW)
    assert book.decide(command("f1-demote", 1), NOW) == (Verdict.ANSWERED, succeeded("f1-demote"))


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (pb.Command(id="x", epoch=7, action=pb.ACTION_DEMOTE), "names no group"),
        (pb.Command(id="x", group="mail", epoch=7), "unknown action 0"),
        (pb.Command(id="x", group="mail", epoch=7, action=42), "unknown action 42"),  # type: ignore[arg-type]
    ],
)
def test_a_malformed_command_fails_without_touching_the_epoch(
    bad: pb.Command, problem: str
) -> None:
    book = CommandBook(HOST)
    verdict, result = book.decide(bad, NOW)
    assert verdict is Verdict.REFUSED
    assert result is not None
    assert result.status == pb.COMMAND_STATUS_FAILED
    assert problem in result.output_tail
    assert book.epochs == {}


def test_history_keeps_the_latest_results_only() -> None:
    book = CommandBook(HOST, limit=3)
    for i in range(5):
        book.record(succeeded(f"c{i}"))
    assert list(book.results) == ["c2", "c3", "c4"]
    book.record(succeeded("c2"))  # recorded again: now the newest
    book.record(succeeded("c5"))
    assert list(book.results) == ["c4", "c2", "c5"]


def test_state_round_trip() -> None:
    book = CommandBook(HOST)
    book.decide(command("f1-demote", 4), NOW)
    book.decide(command("w1-promote", 2, group="web", action=pb.ACTION_PROMOTE), NOW)
    book.record(succeeded("f1-demote", 4))
    book.decide(command("old", 3), NOW)  # refused, recorded
    again = CommandBook.loads(book.dumps(), HOST)
    assert again.epochs == {"mail": 4, "web": 2}
    assert again.results == book.results
    assert list(again.results) == ["f1-demote", "old"]


def test_loading_keeps_the_latest_results_within_the_limit() -> None:
    book = CommandBook(HOST)
    for i in range(10):
        book.record(succeeded(f"c{i}"))
    assert list(CommandBook.loads(book.dumps(), HOST, limit=4).results) == [
        "c6",
        "c7",
        "c8",
        "c9",
    ]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\xff", "not JSON"),
        (b"{", "not JSON"),
        (b"[]", "not a command state"),
        (json.dumps({"format": 99}).encode(), "not a command state"),
        (json.dumps({"format": 1, "epochs": {"m": -1}, "results": []}).encode(), "'epochs'"),
        (json.dumps({"format": 1, "epochs": {"m": "1"}, "results": []}).encode(), "'epochs'"),
        (json.dumps({"format": 1, "epochs": {}, "results": [1]}).encode(), "'results'"),
        (json.dumps({"format": 1, "epochs": {}, "results": ["@@"]}).encode(), "result 0"),
        (json.dumps({"format": 1, "epochs": {}, "results": ["/w=="]}).encode(), "result 0"),
    ],
)
def test_unreadable_state_is_refused_with_a_reason(data: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        CommandBook.loads(data, HOST)


def test_merge_keeps_higher_epochs_and_puts_saved_results_first() -> None:
    saved = CommandBook(HOST)
    saved.epochs = {"mail": 7, "web": 1}
    saved.record(succeeded("s1"))
    saved.record(succeeded("both"))
    book = CommandBook(HOST)
    book.epochs = {"mail": 3, "db": 2}
    book.record(succeeded("both", epoch=2))
    book.record(succeeded("m1"))
    book.merge(saved)
    assert book.epochs == {"mail": 7, "web": 1, "db": 2}
    assert list(book.results) == ["s1", "both", "m1"]
    assert book.results["both"].epoch == 2


def test_a_command_that_arrives_after_its_deadline_is_refused_as_expired() -> None:
    """A promote delayed in flight (or queued behind a stuck hook) must not start once
    the controller counted it as failed. Fails on the old code, which ran a command
    whenever it arrived."""
    book = CommandBook(HOST, margin=1.0)
    late = command("f1-promote", 3, action=pb.ACTION_PROMOTE)
    late.deadline.FromSeconds(int(NOW) - 2)
    verdict, result = book.decide(late, NOW)
    assert verdict is Verdict.REFUSED and result is not None
    assert result.status == pb.COMMAND_STATUS_EXPIRED
    assert "expired: +2.0s past its deadline by this host's clock" in result.output_tail
    assert book.epochs == {}  # refused: it changes nothing
    assert book.decide(late, NOW + 60) == (Verdict.ANSWERED, result)


def test_the_deadline_counts_from_the_margin_before_it_by_this_hosts_clock() -> None:
    book = CommandBook(HOST, margin=1.0)
    within_margin = command("f1-demote", 3)
    within_margin.deadline.FromSeconds(int(NOW) + 1)
    assert book.decide(within_margin, NOW)[0] is Verdict.REFUSED
    in_time = command("f2-demote", 3)
    in_time.deadline.FromSeconds(int(NOW) + 5)
    assert book.decide(in_time, NOW) == (Verdict.RUN, None)
    assert book.time_left(in_time, NOW) == 4.0
    assert book.time_left(command("f3-demote", 3), NOW) is None
