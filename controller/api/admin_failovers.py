"""AdminService methods for groups, failovers, switchovers, maintenance and audit.

Every mutation names its caller and lands in the audit log with the decision,
whether it was carried out or refused.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable

import grpc

from controller.api import convert, validate
from controller.api.identity import Caller, caller
from controller.api.rpc import Ctx, unary
from controller.audit import verify
from controller.auditanchor import AuditAnchor
from controller.config import ControllerConfig
from controller.failover import machine, switchover
from controller.failover.coordinator import Coordinator
from controller.failover.machine import Failover, Refused
from controller.failover.model import ClusterState, GroupView, Trigger
from controller.store.dbthread import DbThread
from controller.store.interface import FailoverCommit, HostRecord, Store
from hangwatch import pbtime
from hangwatch.ids import is_ulid
from hangwatch.v1 import admin_service_pb2 as admin_pb

MAX_REASON = 1000
SCOPES = {v: k for k, v in convert.SCOPE.items()}


class FailoverAdmin:
    _store: Store
    _db: DbThread
    _config: ControllerConfig
    _coordinator: Coordinator
    _audit_anchor: AuditAnchor | None
    _hosts: Callable[[list[HostRecord]], Awaitable[list[admin_pb.Host]]]

    async def _audit(
        self, who: Caller, action: str, target: str, detail: str, allowed: bool = True
    ) -> None:
        await self._db.run(
            self._store.append_audit,
            time.time(),
            who.name,
            who.role,
            action,
            target,
            detail,
            allowed,
        )

    async def _refuse(
        self,
        context: Ctx,
        who: Caller,
        action: str,
        target: str,
        code: grpc.StatusCode,
        message: str,
    ) -> None:
        await self._audit(who, action, target, f"refused: {message}", allowed=False)
        await context.abort(code, message)

    async def _state(self) -> ClusterState:
        state, _ = await self._db.run(self._coordinator.snapshot, time.time())
        return state

    def _group(self, state: ClusterState, name: str) -> GroupView:
        return switchover.find_group(state, name)

    async def _load(self, context: Ctx, failover_id: str) -> Failover:
        if not is_ulid(failover_id):
            raise validate.Invalid("id", f"{failover_id[:40]!r} is not a failover id")
        f = await self._db.run(self._store.get_failover, failover_id)
        if f is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no failover {failover_id}")
        assert f is not None
        return f

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
        await self._db.run(self._store.set_auto_blocked_until, group.name, None)
        await self._audit(who, "ack", group.name, f"anti-flap block ended: {request.reason}")
        return _group_msg(self._group(await self._state(), group.name))

    @unary
    async def SetAutomation(
        self, request: admin_pb.SetAutomationRequest, context: Ctx
    ) -> admin_pb.SetAutomationResponse:
        who = caller(context)
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        value = "on" if request.enabled else "off"
        await self._db.run(self._store.set_setting, "automation", value)
        await self._audit(who, f"automation {value}", "cluster", request.reason)
        return admin_pb.SetAutomationResponse(enabled=request.enabled)

    # Proposals and decisions.

    @unary
    async def ProposeFailover(
        self, request: admin_pb.ProposeFailoverRequest, context: Ctx
    ) -> admin_pb.Failover:
        who = caller(context)
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        f = await self._plan(
            context,
            who,
            request.group,
            request.to_host,
            request.reason,
            request.force,
            Trigger.MANUAL,
        )
        if request.dry_run:
            msg = convert.failover(f)
            msg.dry_run = True
            return msg
        await self._commit_new(f, who)
        return convert.failover(f)

    @unary
    async def Switchover(
        self, request: admin_pb.SwitchoverRequest, context: Ctx
    ) -> admin_pb.Failover:
        who = caller(context)
        if not request.to_host:
            raise validate.Invalid("to_host", "a switchover needs --to HOST")
        reason = request.reason or f"planned switchover to {request.to_host}"
        validate.text(reason, "reason", MAX_REASON)
        f = await self._plan(
            context, who, request.group, request.to_host, reason, request.force, Trigger.SWITCHOVER
        )
        if request.HasField("at"):
            f = dataclasses.replace(f, not_before=pbtime.seconds(request.at))
        # A person asked for it: it is approved as it is created (demote comes first).
        approved = await switchover.start_switchover(
            self._store, self._db, self._coordinator, f, who
        )
        return convert.failover(approved)

    async def _plan(
        self,
        context: Ctx,
        who: Caller,
        group_name: str,
        to_host: str,
        reason: str,
        force: bool,
        trigger: Trigger,
    ) -> Failover:
        state = await self._state()
        try:
            return switchover.plan_failover(
                state, group_name, to_host, reason, force, trigger, who.name
            )
        except switchover.PlanRefused as exc:
            await self._refuse(
                context, who, "propose", group_name, grpc.StatusCode.FAILED_PRECONDITION, str(exc)
            )
            raise AssertionError("unreachable") from exc

    async def _commit_new(self, f: Failover, who: Caller) -> None:
        await switchover.commit_new(self._store, self._db, f, who)

    async def _decide(
        self,
        context: Ctx,
        failover_id: str,
        action: str,
        decide: Callable[[Failover, Caller], Failover],
    ) -> Failover:
        who = caller(context)
        f = await self._load(context, failover_id)
        try:
            new = decide(f, who)
        except Refused as exc:
            await self._refuse(
                context, who, action, f.group, grpc.StatusCode.FAILED_PRECONDITION, str(exc)
            )
            raise AssertionError("unreachable") from exc
        await self._db.run(
            self._store.commit_failover,
            FailoverCommit(
                new, audit=(who.name, who.role, action, f"{f.id}: {new.steps[-1].detail}")
            ),
            time.time(),
        )
        self._coordinator.wake()
        return new

    @unary
    async def ApproveFailover(
        self, request: admin_pb.ApproveFailoverRequest, context: Ctx
    ) -> admin_pb.Failover:
        two = self._config.failover.two_person_rule
        f = await self._decide(
            context,
            request.id,
            "approve",
            lambda f, who: machine.approve(f, who.name, time.time(), two_person=two),
        )
        return convert.failover(f)

    @unary
    async def RejectFailover(
        self, request: admin_pb.RejectFailoverRequest, context: Ctx
    ) -> admin_pb.Failover:
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        f = await self._decide(
            context,
            request.id,
            "reject",
            lambda f, who: machine.reject(f, who.name, request.reason, time.time()),
        )
        return convert.failover(f)

    @unary
    async def CancelFailover(
        self, request: admin_pb.CancelFailoverRequest, context: Ctx
    ) -> admin_pb.Failover:
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        f = await self._decide(
            context,
            request.id,
            "cancel",
            lambda f, who: machine.cancel(f, who.name, request.reason, time.time()),
        )
        return convert.failover(f)

    @unary
    async def ConfirmFenced(
        self, request: admin_pb.ConfirmFencedRequest, context: Ctx
    ) -> admin_pb.Failover:
        who = caller(context)
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        f = await self._load(context, request.id)
        try:
            new, actions = machine.confirm_fenced(
                f,
                who.name,
                request.confirm_host,
                request.reason,
                time.time(),
                self._coordinator.timeouts,
            )
        except Refused as exc:
            await self._refuse(
                context,
                who,
                "confirm-fenced",
                f.group,
                grpc.StatusCode.FAILED_PRECONDITION,
                str(exc),
            )
            raise AssertionError("unreachable") from exc
        await self._coordinator.apply(new, actions, role=who.role)
        return convert.failover(new)

    @unary
    async def ListFailovers(
        self, request: admin_pb.ListFailoversRequest, context: Ctx
    ) -> admin_pb.ListFailoversResponse:
        if request.limit > 1000:
            raise validate.Invalid("limit", f"{request.limit} is above the limit 1000")
        found = await self._db.run(
            self._store.list_failovers, request.group, request.active_only, request.limit or 100
        )
        return admin_pb.ListFailoversResponse(failovers=[convert.failover(f) for f in found])

    @unary
    async def GetFailover(
        self, request: admin_pb.GetFailoverRequest, context: Ctx
    ) -> admin_pb.Failover:
        return convert.failover(await self._load(context, request.id))

    # Maintenance and hosts.

    @unary
    async def SetMaintenance(
        self, request: admin_pb.SetMaintenanceRequest, context: Ctx
    ) -> admin_pb.Maintenance:
        who = caller(context)
        scope = SCOPES.get(request.scope)
        if scope is None:
            raise validate.Invalid("scope", "must be HOST, GROUP or CLUSTER")
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        target = "" if scope == "cluster" else request.target
        if scope == "group":
            self._group(await self._state(), target)
        elif scope == "host":
            validate.host_id(target, "target")
        until = pbtime.seconds(request.until) if request.HasField("until") else None
        now = time.time()
        if until is not None and until <= now:
            raise validate.Invalid("until", "is in the past")
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
        await self._audit(who, f"maintenance {state}", f"{scope}:{target}", request.reason)
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
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no host {request.host_id!r}")
        await self._audit(who, "host clear", request.host_id, request.reason)
        record = await self._db.run(self._store.get_host, request.host_id)
        assert record is not None
        return (await self._hosts([record]))[0]

    # Audit.

    @unary
    async def ListAudit(
        self, request: admin_pb.ListAuditRequest, context: Ctx
    ) -> admin_pb.ListAuditResponse:
        if request.limit > 10_000:
            raise validate.Invalid("limit", f"{request.limit} is above the limit 10000")
        rows = await self._db.run(self._store.list_audit, request.since_seq, request.limit or 1000)
        return admin_pb.ListAuditResponse(entries=[convert.audit(r) for r in rows])

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
