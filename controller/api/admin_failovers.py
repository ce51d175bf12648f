"""AdminService methods for groups, failovers, switchovers, maintenance and audit.

Every mutation names its caller and lands in the audit log with the decision,
whether it was carried out or refused.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable

from controller.api import convert, validate
from controller.api.access import APPROVER, allows
from controller.api.auditlog import AuditLog
from controller.api.identity import Caller, caller
from controller.api.paging import Pager
from controller.api.rpc import Ctx, unary
from controller.audit import verify
from controller.auditanchor import AuditAnchor
from controller.config import ControllerConfig
from controller.failover import switchover
from controller.failover.ledger import Ledger
from controller.failover.machine import Failover
from controller.failover.model import ClusterState, GroupView, Trigger
from controller.failover.snapshot import Snapshots
from controller.store.dbthread import DbThread
from controller.store.interface import HostRecord, Store
from hangwatch import pbtime
from hangwatch.errors import Invalid, NotFound, PermissionDenied, ProposalRefused
from hangwatch.v1 import admin_service_pb2 as admin_pb

MAX_REASON = 1000
SCOPES = {v: k for k, v in convert.SCOPE.items()}


class FailoverAdmin:
    _store: Store
    _db: DbThread
    _config: ControllerConfig
    _audit_log: AuditLog
    _ledger: Ledger
    _snapshots: Snapshots
    _audit_anchor: AuditAnchor | None
    _hosts: Callable[[list[HostRecord]], Awaitable[list[admin_pb.Host]]]

    async def _state(self) -> ClusterState:
        return await self._snapshots.cluster()

    def _group(self, state: ClusterState, name: str) -> GroupView:
        return switchover.find_group(state, name)

    # Groups.

    @unary
    async def ListGroups(
        self, request: admin_pb.ListGroupsRequest, context: Ctx
    ) -> admin_pb.ListGroupsResponse:
        state = await self._state()
        return admin_pb.ListGroupsResponse(
            groups=[_group_msg(g) for g in state.groups], automation_enabled=state.automation
        )

    @unary
    async def AckGroup(self, request: admin_pb.AckGroupRequest, context: Ctx) -> admin_pb.Group:
        who = caller(context)
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        group = self._group(await self._state(), request.group)
        await self._ledger.ack(group.name, who, request.reason)
        return _group_msg(self._group(await self._state(), group.name))

    @unary
    async def SetAutomation(
        self, request: admin_pb.SetAutomationRequest, context: Ctx
    ) -> admin_pb.SetAutomationResponse:
        who = caller(context)
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        value = "on" if request.enabled else "off"
        await self._db.run(self._store.set_setting, "automation", value)
        await self._audit_log.append(who, f"automation {value}", "cluster", request.reason)
        return admin_pb.SetAutomationResponse(enabled=request.enabled)

    # Proposals and decisions.

    @unary
    async def ProposeFailover(
        self, request: admin_pb.ProposeFailoverRequest, context: Ctx
    ) -> admin_pb.Failover:
        who = caller(context)
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        f = await self._plan(
            who,
            request.group,
            request.to_host,
            request.reason,
            request.force,
            Trigger.MANUAL,
            audit_refusal=not request.dry_run,
        )
        if request.dry_run:
            msg = convert.failover(f)
            msg.dry_run = True
            return msg
        await self._ledger.propose(f, who)
        return convert.failover(f)

    @unary
    async def Switchover(
        self, request: admin_pb.SwitchoverRequest, context: Ctx
    ) -> admin_pb.Failover:
        who = caller(context)
        if not request.to_host:
            raise Invalid("to_host", "a switchover needs --to HOST")
        reason = request.reason or f"planned switchover to {request.to_host}"
        validate.text(reason, "reason", MAX_REASON)
        f = await self._plan(
            who, request.group, request.to_host, reason, request.force, Trigger.SWITCHOVER
        )
        if request.HasField("at"):
            f = dataclasses.replace(f, not_before=pbtime.seconds(request.at))
        # A person asked for it: it is approved as it is created (demote comes first),
        # unless the two-person rule wants another person's approval.
        two_person = self._config.failover.two_person_rule
        return convert.failover(await self._ledger.switchover(f, who, two_person=two_person))

    async def _plan(
        self,
        who: Caller,
        group_name: str,
        to_host: str,
        reason: str,
        force: bool,
        trigger: Trigger,
        *,
        audit_refusal: bool = True,
    ) -> Failover:
        """`audit_refusal`: False for a dry run, which asks and changes nothing."""
        state = await self._state()
        try:
            f = switchover.plan_failover(
                state, group_name, to_host, reason, force, trigger, who.name
            )
            if f.forced:
                chosen = next(c for c in f.candidates if c.host_id == f.to_host)
                self._may_force(who, f.to_host, chosen.reasons)
        except (ProposalRefused, PermissionDenied) as exc:
            if audit_refusal:
                await self._audit_log.refused(who, "propose", group_name, exc)
            raise
        return f

    def _may_force(self, who: Caller, host: str, reasons: tuple[str, ...]) -> None:
        """Forcing a failover onto an ineligible host (at risk, unhealthy, unreachable)
        is a decision: it needs the approver role."""
        if not allows(who.role, APPROVER):
            raise PermissionDenied(
                f"role: {who.name} has the role {who.role!r}; --force onto {host} "
                f"({', '.join(reasons)}) needs {APPROVER}"
            )

    @unary
    async def ApproveFailover(
        self, request: admin_pb.ApproveFailoverRequest, context: Ctx
    ) -> admin_pb.Failover:
        who = caller(context)
        validate.text(request.reason, "reason", MAX_REASON, required=bool(request.to_host))
        if request.force and not request.to_host:
            raise Invalid("force", "needs to_host: the member to force the failover onto")
        f = await self._ledger.load(request.id)
        if request.to_host:
            f = await self._retarget(who, f, request.to_host, request.force, request.reason)
        approved = await self._ledger.approve(
            f, who, two_person=self._config.failover.two_person_rule
        )
        return convert.failover(approved)

    async def _retarget(
        self, who: Caller, f: Failover, to_host: str, force: bool, reason: str
    ) -> Failover:
        """Points an open proposal at `to_host`: it keeps its id and its incident, with no
        reject-and-propose-again (which the engine would race with its own proposal)."""
        state = await self._state()
        try:
            chosen, ranked = switchover.choose_target(
                state, self._group(state, f.group), to_host, force
            )
        except ProposalRefused as exc:
            await self._audit_log.refused(who, "retarget", f.group, exc)
            raise
        if to_host == f.to_host:
            return f
        return await self._ledger.retarget(
            f, who, to_host, reason, ranked, forced=force and bool(chosen.reasons)
        )

    @unary
    async def RejectFailover(
        self, request: admin_pb.RejectFailoverRequest, context: Ctx
    ) -> admin_pb.Failover:
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        f = await self._ledger.load(request.id)
        return convert.failover(await self._ledger.reject(f, caller(context), request.reason))

    @unary
    async def CancelFailover(
        self, request: admin_pb.CancelFailoverRequest, context: Ctx
    ) -> admin_pb.Failover:
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        f = await self._ledger.load(request.id)
        return convert.failover(await self._ledger.cancel(f, caller(context), request.reason))

    @unary
    async def ConfirmFenced(
        self, request: admin_pb.ConfirmFencedRequest, context: Ctx
    ) -> admin_pb.Failover:
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        f = await self._ledger.load(request.id)
        confirmed = await self._ledger.confirm_fenced(
            f, caller(context), request.confirm_host, request.reason
        )
        return convert.failover(confirmed)

    @unary
    async def ListFailovers(
        self, request: admin_pb.ListFailoversRequest, context: Ctx
    ) -> admin_pb.ListFailoversResponse:
        pager = Pager(request, 100, 1000, key=(float, str))
        before = (float(pager.after[0]), str(pager.after[1])) if pager.after else None
        found = await self._db.run(
            self._store.list_failovers,
            request.group,
            request.active_only,
            pager.size + 1,
            before,
        )
        page, token = pager.fill(((f.created_at, f.id), convert.failover(f)) for f in found)
        return admin_pb.ListFailoversResponse(failovers=page, next_page_token=token)

    @unary
    async def GetFailover(
        self, request: admin_pb.GetFailoverRequest, context: Ctx
    ) -> admin_pb.Failover:
        return convert.failover(await self._ledger.load(request.id))

    # Maintenance and hosts.

    @unary
    async def SetMaintenance(
        self, request: admin_pb.SetMaintenanceRequest, context: Ctx
    ) -> admin_pb.Maintenance:
        who = caller(context)
        scope = SCOPES.get(request.scope)
        if scope is None:
            raise Invalid("scope", "must be HOST, GROUP or CLUSTER")
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        target = "" if scope == "cluster" else request.target
        if scope == "group":
            self._group(await self._state(), target)
        elif scope == "host":
            validate.host_id(target, "target")
        until = pbtime.seconds(request.until) if request.HasField("until") else None
        now = time.time()
        if until is not None and until <= now:
            raise Invalid("until", "is in the past")
        await self._db.run(
            self._store.set_maintenance,
            scope,
            target,
            request.enabled,
            request.reason,
            who.name,
            until,
            now,
        )
        state = "on" if request.enabled else "off"
        await self._audit_log.append(
            who, f"maintenance {state}", f"{scope}:{target}", request.reason
        )
        return admin_pb.Maintenance(
            scope=request.scope,
            target=target,
            enabled=request.enabled,
            reason=request.reason,
            set_by=who.name,
            set_at=pbtime.timestamp(now),
            until=request.until,
        )

    @unary
    async def ListMaintenance(
        self, request: admin_pb.ListMaintenanceRequest, context: Ctx
    ) -> admin_pb.ListMaintenanceResponse:
        rows = await self._db.run(self._store.list_maintenance, time.time())
        return admin_pb.ListMaintenanceResponse(windows=[convert.maintenance(r) for r in rows])

    @unary
    async def ClearHost(self, request: admin_pb.ClearHostRequest, context: Ctx) -> admin_pb.Host:
        who = caller(context)
        validate.host_id(request.host_id)
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        if not await self._db.run(self._store.set_needs_clear, request.host_id, ""):
            raise NotFound(f"no host {request.host_id!r}")
        await self._audit_log.append(who, "host clear", request.host_id, request.reason)
        record = await self._db.run(self._store.get_host, request.host_id)
        assert record is not None
        return (await self._hosts([record]))[0]

    # Audit.

    @unary
    async def ListAudit(
        self, request: admin_pb.ListAuditRequest, context: Ctx
    ) -> admin_pb.ListAuditResponse:
        pager = Pager(request, 1000, 10_000, key=(int,))
        since = max(request.since_seq, int(pager.after[0])) if pager.after else request.since_seq
        rows = await self._db.run(self._store.list_audit, since, pager.size + 1)
        page, token = pager.fill(((r.seq,), convert.audit(r)) for r in rows)
        return admin_pb.ListAuditResponse(
            entries=page,
            next_page_token=token,
            last_seq=await self._db.run(self._store.last_audit_seq),
        )

    @unary
    async def VerifyAudit(
        self, request: admin_pb.VerifyAuditRequest, context: Ctx
    ) -> admin_pb.VerifyAuditResponse:
        rows = await self._db.run(self._store.list_audit, 0, 2**62)
        anchor = self._audit_anchor
        verdict = verify(rows) if anchor is None else await self._db.run(anchor.verify, rows)
        response = admin_pb.VerifyAuditResponse(
            ok=verdict.ok,
            entries=verdict.entries,
            bad_seq=verdict.bad_seq or 0,
            detail=verdict.detail,
            head_seq=verdict.head_seq,
        )
        if verdict.anchor is not None:
            response.anchored_seq = verdict.anchor.seq
            response.anchored_at.CopyFrom(pbtime.timestamp(verdict.anchor.at))
        return response


def _group_msg(g: GroupView) -> admin_pb.Group:
    msg = admin_pb.Group(
        name=g.name,
        members=g.members,
        mounts=g.mounts,
        mode=admin_pb.FAILOVER_MODE_AUTO if g.mode == "auto" else admin_pb.FAILOVER_MODE_MANUAL,
        primary=g.primary,
        epoch=g.epoch,
        in_maintenance=g.maintenance,
    )
    if g.auto_blocked_until is not None:
        msg.auto_blocked_until.CopyFrom(pbtime.timestamp(g.auto_blocked_until))
    return msg
