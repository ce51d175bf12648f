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
from controller.failover import engine, machine
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
from controller.failover.model import Candidate, ClusterState, FailoverState, Policy
from controller.store.dbthread import DbThread
from controller.store.interface import FailoverCommit, Store
from hangwatch import pbtime
from hangwatch.errors import Invalid, NotFound, PolicyHold, TransitionRefused
from hangwatch.ids import is_ulid
from hangwatch.messages import enum_label
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)
# Steps logged as errors: someone has to act (journalctl -p err finds them).
_FAILED = (FailoverState.FAILED, FailoverState.FENCE_FAILED)

# A check run in a step's transaction (see FailoverCommit.guard).
Guard = Callable[[Sequence[Failover]], str]


def timeouts(config: ControllerConfig) -> Timeouts:
    """The step deadlines the config sets; fencing gets its slowest device's, plus slack."""
    fo = config.failover
    return Timeouts(
        demote=fo.demote_timeout_seconds,
        fence=max((f.timeout_seconds for f in config.fencing), default=60.0) + 5.0,
        promote=fo.promote_timeout_seconds,
        anti_flap=fo.anti_flap_seconds,
        frozen_demote=fo.frozen_demote_timeout_seconds,
    )


class Ledger:
    def __init__(self, store: Store, db: DbThread, hub: CommandHub, timeouts: Timeouts) -> None:
        self._store = store
        self._db = db
        self._hub = hub
        self._audit_log = AuditLog(store, db)
        self.timeouts = timeouts
        self._listeners: list[Callable[[Failover | None], None]] = []

    def listen(self, listener: Callable[[Failover | None], None]) -> None:
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
        self,
        f: Failover,
        who: Caller,
        *,
        auto: bool = False,
        two_person: bool = False,
        policy: Policy | None = None,
        groups: int = 0,
    ) -> Failover:
        """`auto`: approved by policy, not by `who` in person (the two-person rule is a
        person's). With `policy`, its storm limits (over `groups` groups) are checked
        against what is approved already in the approval's own transaction; PolicyHold
        when they no longer allow it."""
        guard = None if policy is None else _storm_guard(policy, groups)
        return await self._decide(
            f,
            who,
            "approve",
            lambda now: (machine.approve(f, who.name, now, auto=auto, two_person=two_person), []),
            guard,
        )

    async def retarget(
        self,
        f: Failover,
        who: Caller,
        to_host: str,
        reason: str,
        candidates: tuple[Candidate, ...],
        forced: bool = False,
    ) -> Failover:
        """Points an open proposal at another member, with the ranking that chose it."""
        action = "retarget (forced)" if forced else "retarget"
        return await self._decide(
            f,
            who,
            action,
            lambda now: (
                machine.retarget(
                    f, who.name, to_host, reason, now, candidates=candidates, forced=forced
                ),
                [],
            ),
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

    async def switchover(self, f: Failover, who: Caller, *, two_person: bool = False) -> Failover:
        """Stores a planned move and approves it at once, in the name of whoever asked for
        it (a planned move demotes the old primary first); under the two-person rule it
        waits PROPOSED for another person's approval."""
        await self.propose(f, who)
        if two_person:
            return f
        return await self.approve(f, who)

    async def note(
        self, f: Failover, who: Caller, action: str, detail: str, **changes: object
    ) -> Failover:
        """Adds a step within the current state (a veto, for example)."""
        new = machine.note(f, time.time(), who.name, detail, **changes)
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
        host = f.fence_host
        new, actions = machine.advance(
            f,
            state.now,
            group_epoch=group.epoch if group else f.epoch,
            group_primary=group.primary if group else None,
            results={k: _outcome(v) for k, v in results.items()},
            fence_result=CommandOutcome(*fenced) if fenced else None,
            fence_configured=fence_configured,
            timeouts=self.timeouts,
            frozen=engine.frozen(state, f.group, host),
        )
        if new is not f:
            step = f"failover {new.state.value.lower()}"
            await self._commit(new, _audit_entry(SYSTEM, step, new), actions)
        return new, actions

    def offer_again(self, f: Failover) -> None:
        """Offers the step's command again to a connected stream that may have missed it
        (a push skipped by a cancelled request); a stream that has it ignores the id."""
        if f.state is FailoverState.FENCING and not f.fence_started:
            send = SendCommand(f.from_host, "demote", f.demote_id, f.epoch, "standby", f.deadline)
        elif f.state is FailoverState.RECALLING and not f.fence_started:
            send = SendCommand(f.to_host, "demote", f.recall_id, f.epoch, "standby", f.deadline)
        elif f.state is FailoverState.PROMOTING:
            send = SendCommand(f.to_host, "promote", f.promote_id, f.epoch, "primary", f.deadline)
        else:
            return
        self._hub.push(send.host, [self._command(f, send)])

    async def ack(self, group: str, who: Caller, reason: str) -> None:
        """Ends the group's anti-flap block: a proposal it held goes ahead on the next
        pass, unless something else holds it."""
        await self._db.run(self._store.set_auto_blocked_until, group, None)
        await self._audit_log.append(who, "ack", group, f"anti-flap block ended: {reason}")
        self._notify(None)

    async def raise_epoch(self, group: str, epoch: int, host: str, was: int) -> bool:
        """Catches the group's epoch up with one its member `host` reports having seen
        (this controller's store was lost or restored); audited as the system."""
        detail = (
            f"epoch {was} -> {epoch}: {host} has seen epoch {epoch} of {group}; the "
            f"controller's record was behind (store lost or restored?)"
        )
        audit = (SYSTEM.name, SYSTEM.role, "raise epoch", detail)
        raised = await self._db.run(self._store.raise_group_epoch, group, epoch, audit, time.time())
        if raised:
            log.warning("group %s: %s", group, detail)
            self._notify(None)
        return raised

    async def record_fence(self, f: Failover, host: str, ok: bool, detail: str) -> None:
        """Keeps a fence agent's outcome (the next step reads it) and audits it."""
        key = f.fence_key(host)
        await self._db.run(self._store.record_fence_result, key, ok, detail, time.time())
        outcome = "succeeded" if ok else "failed"
        await self._audit_log.append(SYSTEM, "fence", host, f"{f.id}: {outcome}: {detail}", ok)

    # One commit.

    async def _decide(
        self,
        f: Failover,
        who: Caller,
        action: str,
        decide: Callable[[float], tuple[Failover, Sequence[Action]]],
        guard: Guard | None = None,
    ) -> Failover:
        """Commits what the state machine makes of a decision, or audits its refusal (the
        machine's, or the guard's in the commit)."""
        try:
            new, actions = decide(time.time())
            await self._commit(new, _audit_entry(who, action, new), actions, guard)
        except (TransitionRefused, PolicyHold) as exc:
            await self._audit_log.refused(who, action, f.group, exc)
            raise
        return new

    async def _commit(
        self,
        f: Failover,
        audit: tuple[str, str, str, str],
        actions: Sequence[Action] = (),
        guard: Guard | None = None,
    ) -> None:
        change = FailoverCommit(f, audit=audit, guard=guard)
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
        self._notify(f)

    def _notify(self, f: Failover | None) -> None:
        """Tells the listeners of a committed record, or (None) of a change to a group."""
        for listener in self._listeners:
            listener(f)

    def _command(self, f: Failover, send: SendCommand) -> pb.Command:
        now = time.time()
        default = self.timeouts.demote if send.action == "demote" else self.timeouts.promote
        deadline = send.deadline if send.deadline is not None else now + default
        return pb.Command(
            id=send.command_id,
            group=f.group,
            epoch=send.epoch,
            action=pb.ACTION_DEMOTE if send.action == "demote" else pb.ACTION_PROMOTE,
            reason=f.reason[:1000],
            timeout=pbtime.duration(max(0.0, deadline - now)),
            issued_at=pbtime.timestamp(now),
            deadline=pbtime.timestamp(deadline),
            failover_id=f.id,
            role=send.role,
        )

    def _outcomes(self, f: Failover) -> tuple[dict[str, pb.CommandResult], tuple[bool, str] | None]:
        """The failover's command results and fence outcome so far (store thread)."""
        return (
            self._store.command_results([f.demote_id, f.promote_id, f.recall_id]),
            self._store.fence_result(f.fence_key(f.fence_host)),
        )


def _storm_guard(policy: Policy, groups: int) -> Guard:
    """The storm limits, checked in the approval's transaction against the failovers
    stored by then (a person's approval or another pass may have come first)."""

    def guard(stored: Sequence[Failover]) -> str:
        now = time.time()
        return "; ".join(engine.storm_holds([f.view(now) for f in stored], groups, now, policy))

    return guard


def _audit_entry(who: Caller, action: str, f: Failover) -> tuple[str, str, str, str]:
    return who.name, who.role, action, f"{f.id}: {f.steps[-1].detail}"


# Answers that say the agent refused a command: its hook never ran.
_NOT_RUN = (pb.COMMAND_STATUS_STALE_EPOCH, pb.COMMAND_STATUS_EXPIRED, pb.COMMAND_STATUS_NO_HOOK)


def _outcome(result: pb.CommandResult) -> CommandOutcome:
    ok = result.status == pb.COMMAND_STATUS_SUCCEEDED
    status = enum_label(pb.CommandStatus, result.status)
    tail = result.output_tail.strip().splitlines()[-1:] or [""]
    detail = f"{status} (exit {result.exit_code})" + (f": {tail[0][:200]}" if tail[0] else "")
    return CommandOutcome(ok, detail, ran=result.status not in _NOT_RUN)
