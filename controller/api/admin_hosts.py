"""AdminService: forgetting a retired host (audited, refused while a group needs it).

A host stays in the store once it registered; a retired one would show UNREACHABLE
for ever and keep an "agent down" alert firing. Removing it drops its record and
with it its heartbeat, its health and its metrics series; its events stay in the
log, and incidents keep naming it.
"""

from __future__ import annotations

from controller.api import validate
from controller.api.auditlog import AuditLog
from controller.api.identity import caller
from controller.api.rpc import Ctx, unary
from controller.failover.model import ClusterState
from controller.failover.snapshot import Snapshots
from controller.store.dbthread import DbThread
from controller.store.interface import Store
from hangwatch.errors import NotFound, Refused
from hangwatch.v1 import admin_service_pb2 as admin_pb

MAX_REASON = 1000


def holding_groups(state: ClusterState, host: str) -> list[str]:
    """The groups that still count on `host`, each with how (pure)."""
    held = []
    for group in state.groups:
        if group.primary == host:
            held.append(f"{group.name} (its primary)")
        elif host in group.members:
            held.append(f"{group.name} (a member)")
    return held


class HostAdmin:
    _store: Store
    _db: DbThread
    _snapshots: Snapshots
    _audit_log: AuditLog

    @unary
    async def RemoveHost(
        self, request: admin_pb.RemoveHostRequest, context: Ctx
    ) -> admin_pb.RemoveHostResponse:
        who = caller(context)
        host = request.host_id
        validate.host_id(host)
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        if await self._db.run(self._store.get_host, host) is None:
            raise NotFound(f"no host {host!r}")
        held = holding_groups(await self._snapshots.cluster(), host)
        if held:
            refusal = Refused(
                f"host_id: {host!r} is in group {', '.join(held)}: take it out of the "
                "group's members in the controller's config (and restart it) first"
            )
            await self._audit_log.refused(who, "host remove", host, refusal)
            raise refusal
        if not await self._db.run(self._store.remove_host, host):
            raise NotFound(f"no host {host!r}")
        await self._audit_log.append(who, "host remove", host, request.reason)
        return admin_pb.RemoveHostResponse()
