"""When a failover commit is refused, for every store backend alike (pure).

A store checks these inside the transaction that writes the step, against what it
holds at that moment; the wording of each refusal is the same whichever store said it.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.failover.machine import Failover
from controller.failover.model import FailoverState
from controller.store.interface import FailoverCommit
from hangwatch.errors import GroupBusy, PolicyHold, StaleFailover


def check_open(f: Failover, open_id: str | None) -> None:
    """A new proposal for a group whose failover `open_id` is still open is refused."""
    if f.state is FailoverState.PROPOSED and open_id is not None and open_id != f.id:
        raise GroupBusy(f"failover {open_id} of {f.group} is still open")


def check_step(f: Failover, before: Failover | None) -> None:
    """Writers commit records they read earlier: a step taken meanwhile by someone else
    (an operator's reject or cancel, the coordinator's next step) wins, and the late
    writer is refused rather than undoing it."""
    if before is None:
        return
    if len(f.steps) <= len(before.steps) or not before.state.active:
        raise StaleFailover(
            f"failover {f.id} is {before.state.value} now "
            f"({before.steps[-1].detail if before.steps else 'no steps'})"
        )


def epoch_taken(group: str, epoch: int) -> StaleFailover:
    """An epoch is taken once, by one failover: the refusal of a second taker."""
    return StaleFailover(f"epoch {epoch} of {group} is no longer the next one")


def check_guard(change: FailoverCommit, recent: Callable[[], list[Failover]]) -> None:
    """Policy checked again inside the approval's own transaction, against the failovers
    committed by then (`recent`, newest first), so approvals in one pass, or by two
    controllers, cannot together exceed the storm limits."""
    if change.guard is None:
        return
    held = change.guard(recent())
    if held:
        raise PolicyHold(f"failover {change.failover.id} not approved automatically: {held}")
