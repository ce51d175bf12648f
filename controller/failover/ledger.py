"""The one writer of failover records: every change to a failover goes through here.

A person's approval, the coordinator's next step and an upgrade's drain alike: the
pure state machine decides whether the change is allowed and what it is, then the
new record is committed with everything the step changes (the group's epoch and
primary, the commands it queues, its audit entry naming the caller and role) in one
transaction, and only then are the commands pushed to connected agents. A refused
change is audited too (allowed=False) and raised as `TransitionRefused`; a change
from a record that moved meanwhile is refused by the store (`StaleFailover`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from controller.api.auditlog import AuditLog
from controller.api.identity import SYSTEM, Caller
from controller.config import ControllerConfig
from controller.failover import machine
from controller.failover.commandhub import CommandHub
from controller.failover.machine import (
    Action,
    BlockAuto,
    CommandOutcome,
    Failover,
    MarkNeedsClear,
    SendCommand,
    SetEpoch,
    SetPrimary,
    Timeouts,
)
from controller.failover.model import ClusterState, FailoverState
from controller.store.dbthread import DbThread
from controller.store.interface import FailoverCommit, Store
from hangwatch import pbtime
from hangwatch.errors import Invalid, NotFound, TransitionRefused
from hangwatch.ids import is_ulid
from hangwatch.messages import enum_label
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)
# Steps logged as errors: someone has to act (journalctl -p err finds them).
_FAILED = (FailoverState.FAILED, FailoverState.FENCE_FAILED)


def timeouts(config: ControllerConfig) -> Timeouts:
    """The step deadlines the config sets; fencing gets its slowest device's, plus slack."""
    fo = config.failover
    return Timeouts(
        demote=fo.demote_timeout_seconds,
        fence=max((f.timeout_seconds for f in config.fencing), default=60.0) + 5.0,
        promote=fo.promote_timeout_seconds,
        anti_flap=fo.anti_flap_seconds,
    )


class Ledger:
    def __init__(self, store: Store, db: DbThread, hub: CommandHub, timeouts: Timeouts) -> None:
        self._store = store
        self._db = db
        self._hub = hub
        self._audit_log = AuditLog(store, db)
        self.timeouts = timeouts
        self._listeners: list[Callable[[Failover], None]] = []

    def listen(self, listener: Callable[[Failover], None]) -> None:
        """Calls `listener` with the record after every committed change (the coordinator's
        wake-up, the failover events); it must not block."""
        self._listeners.append(listener)

    async def load(self, failover_id: str) -> Failover:
        """The stored record; Invalid for a malformed id, NotFound for an unknown one."""
        if not is_ulid(failover_id):
            raise Invalid("id", f"{failover_id[:40]!r} is not a failover id")
        f = await self._db.run(self._store.get_failover, failover_id)
        if f is None:
            raise NotFound(f"no failover {failover_id}")
        return f

    # What people, policy and upgrade drains decide.

    async def propose(self, f: Failover, who: Caller) -> Failover:
        """Stores a new PROPOSED failover; GroupBusy when the group has one open."""
        action = "propose (forced)" if f.forced else "propose"
        detail = f"{f.id}: {f.from_host} -> {f.to_host or '(none)'}: {f.steps[-1].detail}"
        await self._commit(f, (who.name, who.role, action, detail))
        return f

    async def approve(
        self, f: Failover, who: Caller, *, auto: bool = False, two_person: bool = False
    ) -> Failover:
        """`auto`: approved by policy, not by `who` in person (the two-person rule is a
        person's)."""
        return await self._decide(
            f,
            who,
            "approve",
            lambda now: (machine.approve(f, who.name, now, auto=auto, two_person=two_person), []),
        )

    async def reject(self, f: Failover, who: Caller, reason: str) -> Failover:
        return await self._decide(
            f, who, "reject", lambda now: (machine.reject(f, who.name, reason, now), [])
        )

    async def cancel(self, f: Failover, who: Caller, reason: str) -> Failover:
        return await self._decide(
            f, who, "cancel", lambda now: (machine.cancel(f, who.name, reason, now), [])
        )

    async def confirm_fenced(
        self, f: Failover, who: Caller, confirm_host: str, reason: str
    ) -> Failover:
        """A person vouches the old primary is off: the promote is sent at once."""
        return await self._decide(
            f,
            who,
            "confirm-fenced",
            lambda now: machine.confirm_fenced(
                f, who.name, confirm_host, reason, now, self.timeouts
            ),
        )

    async def switchover(self, f: Failover, who: Caller) -> Failover:
        """Stores a planned move and approves it at once, in the name of whoever asked for
        it (a planned move demotes the old primary first)."""
        await self.propose(f, who)
        return await self.approve(f, who)

    async def note(self, f: Failover, who: Caller, action: str, detail: str) -> Failover:
        """Adds a step within the current state (a veto, for example)."""
        new = machine.note(f, time.time(), who.name, detail)
        await self._commit(new, _audit_entry(who, action, new))
        return new

    # What the coordinator's pass does.

    async def advance(
        self, f: Failover, state: ClusterState, *, fence_configured: bool
    ) -> tuple[Failover, list[Action]]:
        """Moves an approved failover one step from what is known now; commits it if it
        changed. Returns the record and the actions, for the side effects (fencing) the
        caller carries out."""
        results, fenced = await self._db.run(self._outcomes, f)
        group = next((g for g in state.groups if g.name == f.group), None)
        new, actions = machine.advance(
            f,
            state.now,
            group_epoch=group.epoch if group else f.epoch,
            group_primary=group.primary if group else None,
            results={k: _outcome(v) for k, v in results.items()},
            fence_result=CommandOutcome(*fenced) if fenced else None,
            fence_configured=fence_configured,
            timeouts=self.timeouts,
        )
        if new is not f:
            step = f"failover {new.state.value.lower()}"
            await self._commit(new, _audit_entry(SYSTEM, step, new), actions)
        return new, actions

    def offer_again(self, f: Failover) -> None:
        """Offers the step's command again to a connected stream that may have missed it
        (a push skipped by a cancelled request); a stream that has it ignores the id."""
        if f.state is FailoverState.FENCING and not f.fence_started:
            send = SendCommand(f.from_host, "demote", f.demote_id, f.epoch, "standby")
        elif f.state is FailoverState.PROMOTING:
            send = SendCommand(f.to_host, "promote", f.promote_id, f.epoch, "primary")
        else:
            return
        self._hub.push(send.host, [self._command(f, send)])

    async def record_fence(self, f: Failover, host: str, ok: bool, detail: str) -> None:
        """Keeps a fence agent's outcome (the next step reads it) and audits it."""
        await self._db.run(self._store.record_fence_result, f.id, ok, detail, time.time())
        outcome = "succeeded" if ok else "failed"
        await self._audit_log.append(SYSTEM, "fence", host, f"{f.id}: {outcome}: {detail}", ok)

    # One commit.

    async def _decide(
        self,
        f: Failover,
        who: Caller,
        action: str,
        decide: Callable[[float], tuple[Failover, Sequence[Action]]],
    ) -> Failover:
        """Commits what the state machine makes of a decision, or audits its refusal."""
        try:
            new, actions = decide(time.time())
        except TransitionRefused as exc:
            await self._audit_log.refused(who, action, f.group, exc)
            raise
        await self._commit(new, _audit_entry(who, action, new), actions)
        return new

    async def _commit(
        self,
        f: Failover,
        audit: tuple[str, str, str, str],
        actions: Sequence[Action] = (),
    ) -> None:
        change = FailoverCommit(f, audit=audit)
        commands: list[tuple[str, pb.Command]] = []
        for action in actions:
            if isinstance(action, SetEpoch):
                change = dataclasses.replace(change, epoch=(action.group, action.epoch))
            elif isinstance(action, SendCommand):
                commands.append((action.host, self._command(f, action)))
            elif isinstance(action, SetPrimary):
                change = dataclasses.replace(change, primary=(action.group, action.host))
            elif isinstance(action, BlockAuto):
                change = dataclasses.replace(
                    change, auto_blocked_until=(action.group, action.until)
                )
            elif isinstance(action, MarkNeedsClear):
                change = dataclasses.replace(change, needs_clear=(action.host, action.reason))
        change = dataclasses.replace(change, commands=tuple(commands))
        await self._db.run(self._store.commit_failover, change, time.time())
        log.log(
            logging.ERROR if f.state in _FAILED else logging.INFO,
            "failover %s of %s: %s (%s): %s",
            f.id,
            f.group,
            f.state.value,
            audit[0],
            f.steps[-1].detail,
            extra={"failover": f.id, "group": f.group, "state": f.state.value},
        )
        for host, command in commands:
            self._hub.push(host, [command])
        for listener in self._listeners:
            listener(f)

    def _command(self, f: Failover, send: SendCommand) -> pb.Command:
        timeout = self.timeouts.demote if send.action == "demote" else self.timeouts.promote
        return pb.Command(
            id=send.command_id,
            group=f.group,
            epoch=send.epoch,
            action=pb.ACTION_DEMOTE if send.action == "demote" else pb.ACTION_PROMOTE,
            reason=f.reason[:1000],
            timeout=pbtime.duration(timeout),
            issued_at=pbtime.timestamp(time.time()),
            failover_id=f.id,
            role=send.role,
        )

    def _outcomes(self, f: Failover) -> tuple[dict[str, pb.CommandResult], tuple[bool, str] | None]:
        """The failover's command results and fence outcome so far (store thread)."""
        return (
            self._store.command_results([f.demote_id, f.promote_id]),
            self._store.fence_result(f.id),
        )


def _audit_entry(who: Caller, action: str, f: Failover) -> tuple[str, str, str, str]:
    return who.name, who.role, action, f"{f.id}: {f.steps[-1].detail}"


def _outcome(result: pb.CommandResult) -> CommandOutcome:
    ok = result.status == pb.COMMAND_STATUS_SUCCEEDED
    status = enum_label(pb.CommandStatus, result.status)
    tail = result.output_tail.strip().splitlines()[-1:] or [""]
    detail = f"{status} (exit {result.exit_code})" + (f": {tail[0][:200]}" if tail[0] else "")
    return CommandOutcome(ok, detail)
