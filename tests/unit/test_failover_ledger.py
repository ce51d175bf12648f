"""The ledger, the one writer of failover records: each change is audited with the name
and role of whoever made it, refusals too, and its commands reach the agents' streams
only once committed."""

from __future__ import annotations

import asyncio
import time

import pytest

from controller.api.identity import SYSTEM, Caller
from controller.failover import machine
from controller.failover.commandhub import CommandHub
from controller.failover.ledger import Ledger
from controller.failover.machine import Timeouts
from controller.failover.model import ClusterState, FailoverState, GroupView, Policy, Trigger
from controller.store.dbthread import DbThread
from controller.store.sqlite.store import SQLiteStore
from hangwatch.errors import NotFound, PolicyHold, TransitionRefused
from hangwatch.ids import new_ulid
from hangwatch.v1 import types_pb2 as pb

ALICE = Caller("alice", "operator")
BOB = Caller("bob", "approver")
CAROL = Caller("carol", "approver")
T = Timeouts(demote=10, fence=20, promote=30, anti_flap=3600)


def cluster(now: float, epoch: int = 0) -> ClusterState:
    return ClusterState(
        now=now,
        groups=(GroupView("mail", ("a", "b"), ("/srv/mail",), "manual", "a", epoch),),
        hosts={},
    )


def test_each_change_is_audited_with_the_callers_name_and_role(stores):
    async def main() -> None:
        store = stores.open()
        store.seed_groups([("mail", "a")])
        db = DbThread()
        hub = CommandHub(lambda host: db.run(store.pending_commands, host))
        ledger = Ledger(store, db, hub, T)
        changes: list[str] = []
        ledger.listen(lambda committed: changes.append(committed.state.value))
        now = time.time()
        f = machine.propose(
            new_ulid(now), "mail", Trigger.MANUAL, "a", "b", "drill", ALICE.name, now, "drill"
        )
        try:
            await ledger.propose(f, ALICE)
            approved = await ledger.approve(await ledger.load(f.id), BOB)
            with pytest.raises(TransitionRefused, match="only a PROPOSED one"):
                await ledger.reject(approved, CAROL, "too late")
            missing = new_ulid(now)
            with pytest.raises(NotFound, match=f"no failover {missing}"):
                await ledger.load(missing)

            # The coordinator's steps are the system's: demote, no answer, no fence agent.
            fencing, _ = await ledger.advance(approved, cluster(now), fence_configured=False)
            stuck, _ = await ledger.advance(fencing, cluster(now + 11, 1), fence_configured=False)
            assert stuck.state is FailoverState.FENCE_FAILED

            # A person vouches the old primary is off: audited as that person, and the
            # promote reaches b's open stream after the commit.
            stream = hub.stream("b")
            assert [c.id for c in store.pending_commands("b")] == []
            confirmed = await ledger.confirm_fenced(stuck, CAROL, "a", "off at the PDU")
            pushed = await asyncio.wait_for(anext(stream), 5)
            assert pushed.id == f.promote_id and pushed.action == pb.ACTION_PROMOTE
            assert confirmed.state is FailoverState.PROMOTING
            await stream.aclose()
        finally:
            db.shutdown()

        rows = [(r.actor, r.role, r.action, r.allowed) for r in store.list_audit()]
        assert rows == [
            ("alice", "operator", "propose", True),
            ("bob", "approver", "approve", True),
            ("carol", "approver", "reject", False),
            (SYSTEM.name, "system", "failover fencing", True),
            (SYSTEM.name, "system", "failover fence_failed", True),
            ("carol", "approver", "confirm-fenced", True),
        ]
        audit = store.list_audit()
        assert audit[2].detail.startswith(f"refused: failover {f.id} is APPROVED")
        assert "carol confirmed a is fenced: off at the PDU" in audit[-1].detail
        assert store.groups()["mail"].epoch == 1
        # Every commit, with its record, not the refusal.
        assert changes == ["PROPOSED", "APPROVED", "FENCING", "FENCE_FAILED", "PROMOTING"]

    asyncio.run(main())


def test_storm_limits_are_checked_again_in_the_approvals_transaction(tmp_path):
    """A policy approval is written only if the storm limits still allow it against
    what is approved by then (another pass, a person): refused and audited otherwise,
    and the proposal stays PROPOSED. Fails on the old code, which had no such check."""

    async def main() -> None:
        store = SQLiteStore(tmp_path / "c.db")
        store.seed_groups([("mail", "a"), ("web", "c")])
        db = DbThread()
        ledger = Ledger(store, db, CommandHub(lambda host: db.run(store.pending_commands, host)), T)
        now = time.time()
        policy = Policy(max_concurrent=1, max_group_percent=100.0)
        first, second = (
            machine.propose(new_ulid(now), g, Trigger.LOCKUP, a, b, "lockup", "hangwatch", now, "x")
            for g, a, b in (("mail", "a", "b"), ("web", "c", "d"))
        )
        try:
            for f in (first, second):
                await ledger.propose(f, SYSTEM)
            await ledger.approve(first, SYSTEM, auto=True, policy=policy, groups=2)
            with pytest.raises(PolicyHold, match=r"1 failover\(s\) already in progress"):
                await ledger.approve(second, SYSTEM, auto=True, policy=policy, groups=2)
            assert (await ledger.load(second.id)).state is FailoverState.PROPOSED
            # A person's approval is not policy's: no storm limit applies.
            assert (await ledger.approve(second, BOB)).state is FailoverState.APPROVED
        finally:
            db.shutdown()
        refused = [r for r in store.list_audit() if not r.allowed]
        assert [(r.actor, r.action) for r in refused] == [("hangwatch", "approve")]
        store.close()

    asyncio.run(main())


def test_a_switchover_under_the_two_person_rule_waits_for_another_person(tmp_path):
    """A person's switchover is stored PROPOSED under the two-person rule; its proposer
    cannot approve it, another approver can. Fails on the old code, which approved a
    switchover in the name of whoever asked for it, rule or not."""

    async def main() -> None:
        store = SQLiteStore(tmp_path / "c.db")
        store.seed_groups([("mail", "a")])
        db = DbThread()
        ledger = Ledger(store, db, CommandHub(lambda host: db.run(store.pending_commands, host)), T)
        now = time.time()
        f = machine.propose(
            new_ulid(now), "mail", Trigger.SWITCHOVER, "a", "b", "kernel", BOB.name, now, "x"
        )
        try:
            waiting = await ledger.switchover(f, BOB, two_person=True)
            assert waiting.state is FailoverState.PROPOSED
            with pytest.raises(TransitionRefused, match="two-person rule"):
                await ledger.approve(waiting, BOB, two_person=True)
            approved = await ledger.approve(waiting, CAROL, two_person=True)
            assert approved.state is FailoverState.APPROVED and approved.approved_by == "carol"
        finally:
            db.shutdown()
        store.close()

    asyncio.run(main())


def test_a_group_epoch_is_only_ever_raised_and_each_raise_is_audited(stores):
    async def main() -> None:
        store = stores.open()
        store.seed_groups([("mail", "a")])
        db = DbThread()
        ledger = Ledger(store, db, CommandHub(lambda host: db.run(store.pending_commands, host)), T)
        changes: list[str] = []
        ledger.listen(lambda _: changes.append("changed"))
        try:
            assert await ledger.raise_epoch("mail", 7, "b", 0)
            assert not await ledger.raise_epoch("mail", 5, "a", 7)
        finally:
            db.shutdown()
        assert store.groups()["mail"].epoch == 7 and changes == ["changed"]
        (entry,) = store.list_audit()
        assert (entry.actor, entry.action, entry.target) == ("hangwatch", "raise epoch", "mail")
        assert "epoch 0 -> 7: b has seen epoch 7 of mail" in entry.detail
        store.close()

    asyncio.run(main())
