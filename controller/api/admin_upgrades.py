"""AdminService methods for advisories (known-bad kernels) and upgrade plans.

Every change is audited, refusals included; plan changes go through the driver's
lock so a person's mark and the driver's pass never overwrite each other.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from controller.api import validate
from controller.api.auditlog import AuditLog
from controller.api.identity import caller
from controller.api.paging import Pager
from controller.api.rpc import Ctx, unary
from controller.config import ControllerConfig
from controller.failover.coordinator import Coordinator
from controller.store.dbthread import DbThread
from controller.store.interface import AdvisoryRow, Store
from controller.upgrades import planner
from controller.upgrades.advisories import AdvisoryBook
from controller.upgrades.driver import UpgradeDriver
from controller.upgrades.kernelversion import BadVersion, parse, parse_range
from controller.upgrades.planner import Plan, PlanHost, PlanHostState, PlanState
from hangwatch import pbtime
from hangwatch.errors import AlreadyExists, Invalid, NotFound, UpgradeRefused
from hangwatch.messages import enum_number
from hangwatch.v1 import admin_service_pb2 as admin_pb

MAX_REASON = 1000
_PLAN_STATE = {s: enum_number(admin_pb.UpgradePlanState, s.value) for s in PlanState}
_HOST_STATE = {s: enum_number(admin_pb.UpgradeHostState, s.value) for s in PlanHostState}


class UpgradeAdmin:
    _store: Store
    _db: DbThread
    _config: ControllerConfig
    _coordinator: Coordinator
    _advisories: AdvisoryBook
    _upgrades: UpgradeDriver
    _audit_log: AuditLog

    # Advisories.

    async def _advisory_msgs(self) -> list[admin_pb.Advisory]:
        records = await self._db.run(self._store.list_hosts)
        at_risk: dict[str, list[str]] = {}
        for record in records:
            reg = record.registration
            for advisory in self._advisories.lookup(reg.inventory, list(reg.mounts)):
                at_risk.setdefault(advisory, []).append(record.host_id)
        return [_advisory(row, at_risk.get(row.id, [])) for row in self._advisories.rows]

    @unary
    async def AddAdvisory(
        self, request: admin_pb.AddAdvisoryRequest, context: Ctx
    ) -> admin_pb.Advisory:
        who = caller(context)
        a = request.advisory
        validate.name(a.id, "advisory.id")
        try:
            parse_range(a.kernel_range)
        except BadVersion as exc:
            raise Invalid("advisory.kernel_range", str(exc)) from None
        if a.fs_type and not re.fullmatch(r"[a-z0-9]{1,32}", a.fs_type):
            raise Invalid("advisory.fs_type", f"{a.fs_type[:40]!r} is not a fs type")
        validate.text(a.reason, "advisory.reason", MAX_REASON)
        validate.text(a.url, "advisory.url", 2048)
        row = AdvisoryRow(a.id, a.kernel_range, a.fs_type, a.reason, a.url, time.time(), who.name)
        if not await self._db.run(self._store.add_advisory, row):
            await self._audit_log.append(
                who, "advisory add", a.id, "refused: exists", allowed=False
            )
            raise AlreadyExists(f"advisory {a.id} exists")
        self._advisories.load(await self._db.run(self._store.list_advisories))
        detail = f"kernel {a.kernel_range}" + (f" on {a.fs_type}" if a.fs_type else "")
        await self._audit_log.append(
            who, "advisory add", a.id, f"{detail}: {a.reason}".rstrip(": ")
        )
        self._coordinator.wake()
        return next(m for m in await self._advisory_msgs() if m.id == a.id)

    @unary
    async def ListAdvisories(
        self, request: admin_pb.ListAdvisoriesRequest, context: Ctx
    ) -> admin_pb.ListAdvisoriesResponse:
        pager = Pager(request, 100, 1000)
        advisories = await self._advisory_msgs()
        page, token = pager.fill(((a.id,), a) for a in advisories if pager.beyond((a.id,)))
        return admin_pb.ListAdvisoriesResponse(advisories=page, next_page_token=token)

    @unary
    async def RemoveAdvisory(
        self, request: admin_pb.RemoveAdvisoryRequest, context: Ctx
    ) -> admin_pb.RemoveAdvisoryResponse:
        who = caller(context)
        validate.name(request.id, "id")
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        if not await self._db.run(self._store.remove_advisory, request.id):
            raise NotFound(f"no advisory {request.id}")
        self._advisories.load(await self._db.run(self._store.list_advisories))
        await self._audit_log.append(who, "advisory remove", request.id, request.reason)
        self._coordinator.wake()
        return admin_pb.RemoveAdvisoryResponse()

    # Upgrade plans.

    async def _plan_hosts(self, request: admin_pb.CreateUpgradePlanRequest) -> list[str]:
        chosen = [bool(request.groups), bool(request.hosts), request.all_hosts]
        if sum(chosen) != 1:
            raise Invalid("hosts", "give exactly one of groups, hosts, all_hosts")
        known = [r.host_id for r in await self._db.run(self._store.list_hosts)]
        if request.all_hosts:
            hosts = known
        elif request.hosts:
            for i, host in enumerate(request.hosts):
                validate.host_id(host, f"hosts[{i}]")
            unknown = [h for h in request.hosts if h not in known]
            if unknown:
                raise Invalid("hosts", f"never registered: {', '.join(unknown)}")
            hosts = list(request.hosts)
        else:
            groups = {g.name: g for g in self._config.groups}
            missing = [g for g in request.groups if g not in groups]
            if missing:
                raise Invalid("groups", f"no group {', '.join(missing)}")
            hosts = [m for g in request.groups for m in groups[g].members]
        hosts = list(dict.fromkeys(hosts))
        if not hosts:
            raise Invalid("hosts", "the plan would hold no host")
        return hosts

    @unary
    async def CreateUpgradePlan(
        self, request: admin_pb.CreateUpgradePlanRequest, context: Ctx
    ) -> admin_pb.UpgradePlan:
        who = caller(context)
        validate.name(request.name, "name")
        try:
            parse(request.target_kernel)
        except BadVersion as exc:
            raise Invalid("target_kernel", str(exc)) from None
        if request.target_fs:
            try:
                planner.parse_fs_spec(request.target_fs)
            except ValueError as exc:
                raise Invalid("target_fs", str(exc)) from None
        soak = (
            pbtime.seconds(request.soak)
            if request.HasField("soak")
            else self._config.upgrades.default_soak_seconds
        )
        if soak < 0:
            raise Invalid("soak", "must not be negative")
        now = time.time()
        plan = Plan(
            name=request.name,
            target_kernel=request.target_kernel,
            target_fs=request.target_fs,
            state=PlanState.RUNNING,
            soak_seconds=soak,
            created_at=now,
            created_by=who.name,
            hosts=tuple(PlanHost(h, updated_at=now) for h in await self._plan_hosts(request)),
            detail=f"created by {who.name}",
        )
        try:
            created = await self._upgrades.create(plan, who)
        except UpgradeRefused as exc:
            await self._audit_log.refused(who, "upgrade plan", plan.name, exc)
            raise
        if not created:
            raise AlreadyExists(f"plan {plan.name} exists")
        return plan_msg(plan)

    async def _load_plan(self, name: str) -> Plan:
        validate.name(name, "name")
        plan = await self._db.run(self._store.get_plan, name)
        if plan is None:
            raise NotFound(f"no upgrade plan {name!r}")
        return plan

    @unary
    async def GetUpgradePlan(
        self, request: admin_pb.GetUpgradePlanRequest, context: Ctx
    ) -> admin_pb.UpgradePlan:
        return plan_msg(await self._load_plan(request.name))

    @unary
    async def ListUpgradePlans(
        self, request: admin_pb.ListUpgradePlansRequest, context: Ctx
    ) -> admin_pb.ListUpgradePlansResponse:
        pager = Pager(request, 100, 1000, key=(float, str))
        plans = await self._db.run(self._store.list_plans)
        page, token = pager.fill(
            ((p.created_at, p.name), plan_msg(p))
            for p in sorted(plans, key=lambda p: (p.created_at, p.name))
            if pager.beyond((p.created_at, p.name))
        )
        return admin_pb.ListUpgradePlansResponse(plans=page, next_page_token=token)

    async def _change(
        self,
        context: Ctx,
        name: str,
        action: str,
        detail: str,
        change: Callable[[Plan], Plan],
    ) -> admin_pb.UpgradePlan:
        who = caller(context)
        await self._load_plan(name)
        try:
            new = await self._upgrades.change(name, change, who, action, detail)
        except UpgradeRefused as exc:
            await self._audit_log.refused(who, action, name, exc)
            raise
        assert new is not None
        return plan_msg(new)

    @unary
    async def SetUpgradePlanState(
        self, request: admin_pb.SetUpgradePlanStateRequest, context: Ctx
    ) -> admin_pb.UpgradePlan:
        who = caller(context)
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        state = next((s for s, v in _PLAN_STATE.items() if v == request.state), None)
        if state is None:
            raise Invalid("state", "must be RUNNING, PAUSED or ABORTED")
        verb = {PlanState.RUNNING: "resume", PlanState.PAUSED: "pause"}.get(state, "abort")
        return await self._change(
            context,
            request.name,
            f"upgrade {verb}",
            request.reason,
            lambda plan: planner.set_state(plan, state, who.name, request.reason),
        )

    @unary
    async def MarkUpgradeHost(
        self, request: admin_pb.MarkUpgradeHostRequest, context: Ctx
    ) -> admin_pb.UpgradePlan:
        who = caller(context)
        validate.host_id(request.host_id)
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        state = next((s for s, v in _HOST_STATE.items() if v == request.state), None)
        if state is None:
            raise Invalid("state", "must be an upgrade host state")
        world = await self._db.run(self._upgrades.world, time.time())
        facts = world.hosts.get(request.host_id)
        primary_of = tuple(g.name for g in world.cluster.groups if g.primary == request.host_id)
        return await self._change(
            context,
            request.name,
            "upgrade mark",
            f"{request.host_id} {state.value}: {request.reason}",
            lambda plan: planner.mark(
                plan,
                request.host_id,
                state,
                who.name,
                request.reason,
                time.time(),
                facts,
                primary_of,
            ),
        )


def _advisory(row: AdvisoryRow, hosts: list[str]) -> admin_pb.Advisory:
    return admin_pb.Advisory(
        id=row.id,
        kernel_range=row.kernel_range,
        fs_type=row.fs_type,
        reason=row.reason,
        url=row.url,
        created_at=pbtime.timestamp(row.created_at),
        created_by=row.created_by,
        hosts_at_risk=hosts,
    )


def plan_msg(plan: Plan) -> admin_pb.UpgradePlan:
    return admin_pb.UpgradePlan(
        name=plan.name,
        target_kernel=plan.target_kernel,
        target_fs=plan.target_fs,
        state=_PLAN_STATE[plan.state],
        created_at=pbtime.timestamp(plan.created_at),
        created_by=plan.created_by,
        percent_done=plan.percent_done,
        soak=pbtime.duration(plan.soak_seconds),
        hosts=[
            admin_pb.UpgradeHost(
                host_id=h.host_id,
                state=_HOST_STATE[h.state],
                detail=h.detail,
                kernel_release=h.kernel_release,
                updated_at=pbtime.timestamp(h.updated_at),
                mounts_fs=dict(h.mounts_fs),
            )
            for h in plan.hosts
        ],
    )
