"""The store keeps at most one open failover per group, whoever proposes it (each
backend alike)."""

from __future__ import annotations

import pytest

from controller.failover.machine import Failover, approve
from controller.failover.model import FailoverState, Trigger
from controller.store.interface import FailoverCommit
from hangwatch.errors import GroupBusy, StaleFailover
from hangwatch.ids import new_ulid


def proposal(group: str = "mail") -> Failover:
    return Failover(
        id=new_ulid(),
        group=group,
        state=FailoverState.PROPOSED,
        trigger=Trigger.MANUAL,
        from_host="a",
        to_host="b",
        reason="drill",
        proposed_by="alice",
        created_at=1.0,
    )


def test_a_second_open_failover_of_a_group_is_refused_atomically(stores):
    store = stores.open()
    first = proposal()
    store.commit_failover(FailoverCommit(first), 1.0)
    with pytest.raises(GroupBusy, match=first.id):
        store.commit_failover(FailoverCommit(proposal()), 2.0)
    store.commit_failover(FailoverCommit(proposal("other")), 2.0)  # other groups are free
    # Steps of the open failover itself are not refused.
    store.commit_failover(FailoverCommit(approve(first, "bob", 3.0)), 3.0)
    assert [f.id for f in store.list_failovers("mail")] == [first.id]


def test_a_step_from_a_stale_record_is_refused(stores):
    from controller.failover.machine import reject

    store = stores.open()
    f = proposal()
    store.commit_failover(FailoverCommit(f), 1.0)
    store.commit_failover(FailoverCommit(reject(f, "bob", "false alarm", 2.0)), 2.0)
    with pytest.raises(StaleFailover, match="REJECTED"):
        store.commit_failover(FailoverCommit(approve(f, "hangwatch", 3.0, auto=True)), 3.0)
    assert store.get_failover(f.id).state is FailoverState.REJECTED  # type: ignore[union-attr]


def test_commands_of_a_finished_failover_are_no_longer_pending(stores):
    import dataclasses

    from controller.failover.machine import note
    from hangwatch.v1 import types_pb2 as pb

    store = stores.open()
    proposed = proposal()
    store.commit_failover(FailoverCommit(proposed), 1.0)
    approved = approve(proposed, "bob", 2.0)
    command = pb.Command(id=f"{proposed.id}-demote", group="mail", epoch=1, failover_id=proposed.id)
    store.commit_failover(FailoverCommit(approved, commands=(("a", command),)), 2.0)
    assert [c.id for c in store.pending_commands("a")] == [command.id]
    failed = dataclasses.replace(
        note(approved, 3.0, "hangwatch", "promote timed out"), state=FailoverState.FAILED
    )
    store.commit_failover(FailoverCommit(failed), 3.0)
    assert store.pending_commands("a") == []
