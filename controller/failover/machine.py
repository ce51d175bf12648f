"""The failover state machine (pure): PROPOSED -> APPROVED -> FENCING -> PROMOTING -> COMPLETED.

docs/design.md#4-fence-before-promote: the promote command exists only after the old
primary acknowledged its demote, a fence agent succeeded, or an operator
confirmed the fencing by hand. A target may be serving from the moment its promote
is sent until a demote or fence of it succeeds: a promote that fails or times out
leaves the failover open (RECALLING) until the target is demoted or fenced, so no
other failover of the group can start meanwhile. Every command carries the epoch
the failover took (the group's epoch + 1) and a deadline, and command ids are
derived from the failover id, so sending a command again after a controller crash
is answered from the agent's record rather than run twice.

`advance()` is the whole driver: given a failover and what is known now (command
results, fence outcome, the clock) it returns the next record and the actions to
carry out. It is idempotent, so the coordinator resumes after a crash at any step
by calling it again with what the store holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.failover.model import Candidate, FailoverState, FailoverView, Trigger
from hangwatch.errors import TransitionRefused


@dataclass(frozen=True)
class Step:
    state: FailoverState
    at: float
    actor: str
    detail: str


@dataclass(frozen=True)
class Failover:
    id: str
    group: str
    state: FailoverState
    trigger: Trigger
    from_host: str
    to_host: str
    reason: str
    proposed_by: str
    created_at: float
    epoch: int = 0
    approved_by: str = ""
    auto: bool = False
    forced: bool = False
    # Deadline of the step in progress (demote, fence or promote).
    deadline: float | None = None
    fence_started: bool = False
    # The promote failed or timed out: the target is being demoted or fenced.
    recalling: bool = False
    # The pre-failover hook vetoed its automatic approval: a person decides.
    vetoed: bool = False
    not_before: float | None = None
    incident_id: str = ""
    candidates: tuple[Candidate, ...] = ()
    steps: tuple[Step, ...] = ()

    @property
    def demote_id(self) -> str:
        return f"{self.id}-demote"

    @property
    def promote_id(self) -> str:
        return f"{self.id}-promote"

    def view(self, now: float) -> FailoverView:
        """What the engine sees of this failover at `now`."""
        return FailoverView(
            self.id,
            self.group,
            self.state,
            self.created_at,
            self.auto,
            waiting=self.state is FailoverState.APPROVED
            and self.not_before is not None
            and self.not_before > now,
            trigger=self.trigger,
            to_host=self.to_host,
            vetoed=self.vetoed,
        )

    @property
    def recall_id(self) -> str:
        return f"{self.id}-recall"

    @property
    def fence_host(self) -> str:
        """The host this failover must get out of service: the old primary, or the
        target once its promote failed."""
        return self.to_host if self.recalling else self.from_host

    def fence_key(self, host: str) -> str:
        """Under which key a fence outcome of `host` in this failover is kept."""
        return self.id if host == self.from_host else self.recall_id

    @property
    def unplanned(self) -> bool:
        return self.trigger in (Trigger.LOCKUP, Trigger.UNREACHABLE, Trigger.MANUAL)


@dataclass(frozen=True)
class Timeouts:
    demote: float = 30.0
    fence: float = 60.0
    promote: float = 60.0
    anti_flap: float = 6 * 3600.0
    # A frozen old primary with no fence agent: how long its demote may take.
    frozen_demote: float = 5.0


@dataclass(frozen=True)
class CommandOutcome:
    ok: bool
    detail: str
    # False when the agent refused the command (stale epoch, expired, no hook): its hook
    # never ran.
    ran: bool = True


# Actions the coordinator carries out, in order, after persisting the new record.
@dataclass(frozen=True)
class SetEpoch:
    group: str
    epoch: int


@dataclass(frozen=True)
class SendCommand:
    host: str
    action: str  # "demote" | "promote"
    command_id: str
    epoch: int
    role: str
    # When the command expires; a command is known by its id, so it is no part of equality.
    deadline: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class RunFence:
    host: str


@dataclass(frozen=True)
class SetPrimary:
    group: str
    host: str


@dataclass(frozen=True)
class MarkNeedsClear:
    host: str
    reason: str


@dataclass(frozen=True)
class BlockAuto:
    group: str
    until: float


Action = SetEpoch | SendCommand | RunFence | SetPrimary | MarkNeedsClear | BlockAuto


def _to(
    f: Failover, state: FailoverState, now: float, actor: str, detail: str, **changes: object
) -> Failover:
    step = Step(state, now, actor, detail)
    return dataclasses.replace(f, state=state, steps=(*f.steps, step), **changes)  # type: ignore[arg-type]


def note(f: Failover, now: float, actor: str, detail: str, **changes: object) -> Failover:
    """A step within the current state (e.g. 'demote failed; fencing')."""
    return _to(f, f.state, now, actor, detail, **changes)


def propose(
    failover_id: str,
    group: str,
    trigger: Trigger,
    from_host: str,
    to_host: str,
    reason: str,
    actor: str,
    now: float,
    detail: str,
    *,
    candidates: tuple[Candidate, ...] = (),
    forced: bool = False,
    incident_id: str = "",
) -> Failover:
    """A new failover, PROPOSED by `actor`; `detail` is its first step's."""
    return Failover(
        id=failover_id,
        group=group,
        state=FailoverState.PROPOSED,
        trigger=trigger,
        from_host=from_host,
        to_host=to_host,
        reason=reason,
        proposed_by=actor,
        created_at=now,
        forced=forced,
        incident_id=incident_id,
        candidates=candidates,
        steps=(Step(FailoverState.PROPOSED, now, actor, detail),),
    )


def approve(
    f: Failover, actor: str, now: float, *, auto: bool = False, two_person: bool = False
) -> Failover:
    if f.state is not FailoverState.PROPOSED:
        raise TransitionRefused(f"failover {f.id} is {f.state.value}, not PROPOSED")
    if not f.to_host:
        raise TransitionRefused(
            f"failover {f.id} has no target; propose again with --to HOST "
            "(and --force for an ineligible one)"
        )
    if two_person and not auto and actor == f.proposed_by:
        raise TransitionRefused(
            f"two-person rule: {actor} proposed failover {f.id} and cannot also approve it"
        )
    how = "approved automatically by policy" if auto else "approved"
    return _to(f, FailoverState.APPROVED, now, actor, how, approved_by=actor, auto=auto)


def retarget(
    f: Failover,
    actor: str,
    to_host: str,
    reason: str,
    now: float,
    *,
    candidates: tuple[Candidate, ...],
    forced: bool = False,
) -> Failover:
    """A PROPOSED failover with another target (and the ranking that chose it); it keeps
    its id, its incident and its trigger."""
    if f.state is not FailoverState.PROPOSED:
        raise TransitionRefused(
            f"failover {f.id} is {f.state.value}; only a PROPOSED one can be retargeted"
        )
    if to_host == f.from_host:
        raise TransitionRefused(f"{to_host} is the old primary of failover {f.id}")
    passed = [c for c in candidates if c.host_id == to_host and c.reasons]
    detail = f"target {f.to_host or '(none)'} -> {to_host}: {reason}" + (
        f" (forced past: {', '.join(passed[0].reasons)})" if forced and passed else ""
    )
    return _to(
        f,
        FailoverState.PROPOSED,
        now,
        actor,
        detail,
        to_host=to_host,
        candidates=candidates,
        forced=forced and bool(passed),
    )


def reject(f: Failover, actor: str, reason: str, now: float) -> Failover:
    if f.state is not FailoverState.PROPOSED:
        raise TransitionRefused(
            f"failover {f.id} is {f.state.value}; only a PROPOSED one can be rejected"
        )
    return _to(f, FailoverState.REJECTED, now, actor, reason)


def cancel(f: Failover, actor: str, reason: str, now: float) -> Failover:
    if f.recalling:
        raise TransitionRefused(
            f"failover {f.id}: {f.to_host} may be serving after its promote, so the "
            f"failover stays open; once {f.to_host} is off, confirm it with "
            f"'hangwatchctl failover confirm-fenced {f.id} --confirm {f.to_host}'"
        )
    if f.state not in (FailoverState.PROPOSED, FailoverState.APPROVED, FailoverState.FENCE_FAILED):
        raise TransitionRefused(
            f"failover {f.id} is {f.state.value}; it can be cancelled only before "
            "fencing starts or after fencing failed"
        )
    return _to(f, FailoverState.CANCELLED, now, actor, reason)


def confirm_fenced(
    f: Failover, actor: str, confirm_host: str, reason: str, now: float, timeouts: Timeouts
) -> tuple[Failover, list[Action]]:
    if f.state is not FailoverState.FENCE_FAILED:
        raise TransitionRefused(f"failover {f.id} is {f.state.value}, not FENCE_FAILED")
    host = f.fence_host
    if confirm_host != host:
        whose = "the target whose promote failed" if f.recalling else "the old primary"
        raise TransitionRefused(
            f"confirmation {confirm_host!r} does not name {whose} "
            f"{host!r}: type its host id to confirm it is off"
        )
    _, then = _out_of_service_step(f, now, actor, timeouts)
    return then(f"{actor} confirmed {host} is fenced: {reason}")


def _promote(
    f: Failover, now: float, actor: str, detail: str, timeouts: Timeouts
) -> tuple[Failover, list[Action]]:
    deadline = now + timeouts.promote
    new = _to(f, FailoverState.PROMOTING, now, actor, detail, deadline=deadline)
    return new, [SendCommand(f.to_host, "promote", f.promote_id, f.epoch, "primary", deadline)]


def _recall(f: Failover, now: float, why: str, timeouts: Timeouts) -> tuple[Failover, list[Action]]:
    """The promote failed or timed out: the target may be serving, so it is demoted
    (and fenced if that fails) before the failover ends."""
    deadline = now + timeouts.demote
    new = _to(
        f,
        FailoverState.RECALLING,
        now,
        "hangwatch",
        f"{why}; {f.to_host} may be serving: asking it to demote",
        recalling=True,
        fence_started=False,
        deadline=deadline,
    )
    return new, [SendCommand(f.to_host, "demote", f.recall_id, f.epoch, "standby", deadline)]


def _recalled(f: Failover, now: float, actor: str, detail: str) -> tuple[Failover, list[Action]]:
    new = _to(
        f,
        FailoverState.FAILED,
        now,
        actor,
        f"{detail}; the failover ends without a new primary: propose again",
        deadline=None,
    )
    why = f"its promote in failover {f.id} failed"
    return new, [MarkNeedsClear(f.to_host, why)]


Then = Callable[[str], tuple[Failover, list[Action]]]


def _out_of_service_step(
    f: Failover, now: float, actor: str, timeouts: Timeouts
) -> tuple[str, Then]:
    """The demote that takes `f.fence_host` out of service, and what follows once it is
    out (demoted, fenced or confirmed off): the promote, or the end of a recall."""
    if f.recalling:
        return f.recall_id, lambda detail: _recalled(f, now, actor, detail)
    return f.demote_id, lambda detail: _promote(f, now, actor, detail, timeouts)


def advance(
    f: Failover,
    now: float,
    *,
    group_epoch: int,
    results: dict[str, CommandOutcome],
    group_primary: str | None = None,
    fence_result: CommandOutcome | None,
    fence_configured: bool,
    timeouts: Timeouts,
    frozen: str = "",
) -> tuple[Failover, list[Action]]:
    """The next step of an approved failover, from what is known now (idempotent).

    `fence_result` and `fence_configured` are about `f.fence_host`. `frozen` says why
    that host cannot demote (a group mount LOCKED, say) when its group fences such a
    host at once: then the fence runs beside the demote and the failover goes on
    after whichever succeeds first; with no fence agent, the demote gets
    `timeouts.frozen_demote` before the failover stops for a person.
    """
    me = "hangwatch"
    # A step never comes before the one it follows, and its deadline counts from its own
    # start: `now` may be a pass's start, taken before an approval (and the
    # pre-failover hook that preceded it) was written.
    now = max(now, f.steps[-1].at) if f.steps else now
    if f.state is FailoverState.APPROVED:
        if f.not_before is not None and now < f.not_before:
            return f, []
        if group_primary is not None and group_primary != f.from_host:
            # Another failover moved the group since this one was proposed: demoting the
            # old host would leave the new primary serving beside the promoted one.
            return _to(
                f,
                FailoverState.FAILED,
                now,
                me,
                f"the group's primary is now {group_primary}, not {f.from_host}: propose again",
                deadline=None,
            ), []
        return _start(f, now, group_epoch + 1, fence_configured, timeouts, frozen)
    if f.state in (FailoverState.FENCING, FailoverState.RECALLING):
        return _out_of_service(f, now, results, fence_result, fence_configured, timeouts, frozen)
    if f.state is FailoverState.FENCE_FAILED:
        command_id, then = _out_of_service_step(f, now, me, timeouts)
        late = results.get(command_id)
        if late is not None and late.ok:
            # The fence failed, but the demote sent before it got through after all.
            return then(f"{f.fence_host} demoted: {late.detail}")
    if f.state is FailoverState.PROMOTING:
        outcome = results.get(f.promote_id)
        if outcome is not None and outcome.ok:
            new = _to(
                f,
                FailoverState.COMPLETED,
                now,
                me,
                f"{f.to_host} promoted: {outcome.detail}",
                deadline=None,
            )
            actions: list[Action] = [SetPrimary(f.group, f.to_host)]
            if f.unplanned:
                actions += [
                    MarkNeedsClear(
                        f.from_host, f"failover {f.id} moved {f.group} away from it ({f.reason})"
                    ),
                    BlockAuto(f.group, now + timeouts.anti_flap),
                ]
            return new, actions
        if outcome is not None and not outcome.ran:
            return _recalled(f, now, me, f"{f.to_host} refused its promote: {outcome.detail}")
        if outcome is not None:
            return _recall(f, now, f"promote failed: {outcome.detail}", timeouts)
        if f.deadline is not None and now > f.deadline:
            return _recall(
                f,
                now,
                f"{f.to_host} did not report its promote within {timeouts.promote:.0f}s",
                timeouts,
            )
    return f, []


def _start(
    f: Failover,
    now: float,
    epoch: int,
    fence_configured: bool,
    timeouts: Timeouts,
    frozen: str,
) -> tuple[Failover, list[Action]]:
    """Takes the group's next epoch and asks the old primary to demote; a frozen one is
    fenced in the same step. Persisted with the epoch (one transaction), so a crash
    cannot take the same epoch twice."""
    asking = f"epoch {epoch}: asking {f.from_host} to demote"
    if frozen and fence_configured:
        new = _to(
            f,
            FailoverState.FENCING,
            now,
            "hangwatch",
            f"{asking}; {frozen}: fencing it at once",
            epoch=epoch,
            fence_started=True,
            deadline=now + timeouts.fence,
        )
        demote_deadline = now + timeouts.demote
        actions: list[Action] = [RunFence(f.from_host)]
    else:
        demote_deadline = now + (timeouts.frozen_demote if frozen else timeouts.demote)
        new = _to(
            f,
            FailoverState.FENCING,
            now,
            "hangwatch",
            asking,
            epoch=epoch,
            deadline=demote_deadline,
        )
        actions = []
    demote = SendCommand(f.from_host, "demote", f.demote_id, epoch, "standby", demote_deadline)
    return new, [SetEpoch(f.group, epoch), demote, *actions]


def _out_of_service(
    f: Failover,
    now: float,
    results: dict[str, CommandOutcome],
    fence_result: CommandOutcome | None,
    fence_configured: bool,
    timeouts: Timeouts,
    frozen: str,
) -> tuple[Failover, list[Action]]:
    """Gets `f.fence_host` out of service: its demote, or a fence when the demote fails,
    times out or cannot finish; then what follows (`_out_of_service_step`)."""
    me = "hangwatch"
    host = f.fence_host
    command_id, then = _out_of_service_step(f, now, me, timeouts)
    demoted = results.get(command_id)
    if demoted is not None and demoted.ok:
        # Demoted, whether or not a fence runs beside it: the host serves no more.
        return then(f"{host} demoted: {demoted.detail}")
    confirm = f"confirm by hand with 'hangwatchctl failover confirm-fenced {f.id} --confirm {host}'"
    if not f.fence_started:
        why = _demote_is_over(f, now, demoted, timeouts, frozen, fence_configured)
        if not why:
            return f, []
        if not fence_configured:
            return _to(
                f,
                FailoverState.FENCE_FAILED,
                now,
                me,
                f"{why}; no fence agent is configured for {host}: {confirm}",
                deadline=None,
            ), []
        new = note(
            f,
            now,
            me,
            f"{why}; fencing {host}",
            fence_started=True,
            deadline=now + timeouts.fence,
        )
        return new, [RunFence(host)]
    if fence_result is None:
        if f.deadline is not None and now > f.deadline:
            return _to(
                f,
                FailoverState.FENCE_FAILED,
                now,
                me,
                f"fencing {host} did not finish within {timeouts.fence:.0f}s: {confirm}",
                deadline=None,
            ), []
        return f, []
    if fence_result.ok:
        return then(f"{host} fenced: {fence_result.detail}")
    return _to(
        f,
        FailoverState.FENCE_FAILED,
        now,
        me,
        f"fencing {host} failed: {fence_result.detail}; {confirm}",
        deadline=None,
    ), []


def _demote_is_over(
    f: Failover,
    now: float,
    demoted: CommandOutcome | None,
    timeouts: Timeouts,
    frozen: str,
    fence_configured: bool,
) -> str:
    """Why the demote no longer counts (failed, past its deadline, cannot finish on a
    frozen host that can be fenced instead); "" while it may still succeed."""
    host = f.fence_host
    if demoted is not None:
        return f"demote failed: {demoted.detail}"
    if frozen and fence_configured:
        return f"{frozen}: its demote cannot finish"
    deadline = f.deadline
    if frozen and deadline is not None:
        # Frozen since the demote was sent: it gets no longer than a frozen one would.
        deadline = min(deadline, _entered(f, f.state) + timeouts.frozen_demote)
    if deadline is None or now <= deadline:
        return ""
    if frozen:
        return (
            f"{frozen}: {host} did not acknowledge its demote within {timeouts.frozen_demote:.0f}s"
        )
    return f"{host} did not acknowledge its demote within {timeouts.demote:.0f}s"


def _entered(f: Failover, state: FailoverState) -> float:
    """When `f` last entered `state` (its step deadlines count from there)."""
    at, before = f.created_at, None
    for step in f.steps:
        if step.state is state and before is not state:
            at = step.at
        before = step.state
    return at
