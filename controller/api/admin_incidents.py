"""AdminService methods for incidents: list them, show one as a timeline or a status page."""

from __future__ import annotations

import time

from controller.api.rpc import Ctx, unary
from controller.config import ControllerConfig
from controller.incidents import evidence, report
from controller.store.dbthread import DbThread
from controller.store.interface import IncidentRow, Store
from hangwatch import pbtime
from hangwatch.errors import Invalid, NotFound
from hangwatch.ids import is_ulid
from hangwatch.v1 import admin_service_pb2 as admin_pb

EVENTS_PER_HOST = 1000
AUDIT_SCAN = 10_000


class IncidentAdmin:
    _store: Store
    _db: DbThread
    _config: ControllerConfig

    def _message(self, row: IncidentRow) -> admin_pb.Incident:
        msg = admin_pb.Incident(
            id=row.id,
            group=row.group,
            host_id=row.host_id,
            started_at=pbtime.timestamp(row.started_at),
            open=row.ended_at is None,
        )
        if row.ended_at is not None:
            msg.ended_at.CopyFrom(pbtime.timestamp(row.ended_at))
        return msg

    @unary
    async def ListIncidents(
        self, request: admin_pb.ListIncidentsRequest, context: Ctx
    ) -> admin_pb.ListIncidentsResponse:
        if request.limit > 1000:
            raise Invalid("limit", f"{request.limit} is above the limit 1000")
        rows = await self._db.run(
            self._store.list_incidents, request.open_only, request.limit or 100
        )
        return admin_pb.ListIncidentsResponse(incidents=[self._message(r) for r in rows])

    @unary
    async def GetIncident(
        self, request: admin_pb.GetIncidentRequest, context: Ctx
    ) -> admin_pb.Incident:
        if not is_ulid(request.id):
            raise Invalid("id", f"{request.id[:40]!r} is not an incident id")
        if request.format not in ("", "markdown"):
            raise Invalid("format", f"{request.format[:20]!r}: use '' or 'markdown'")
        row = await self._db.run(self._store.get_incident, request.id)
        if row is None:
            raise NotFound(f"no incident {request.id}")
        members = next(
            (g.members for g in self._config.groups if g.name == row.group), [row.host_id]
        )
        entries = await self._db.run(self._timeline, row, members)
        msg = self._message(row)
        lockups = await self._db.run(evidence.lockup_events, self._store, row, members)
        msg.evidence.extend(e.id for e in lockups)
        for e in entries:
            msg.timeline.add(at=pbtime.timestamp(e.at), kind=e.kind, text=e.text, ref=e.ref)
        if request.format == "markdown":
            msg.rendered = report.markdown(row, entries, members, list(msg.advisories), time.time())
        return msg

    def _timeline(self, row: IncidentRow, members: list[str]) -> list[report.Entry]:
        events = []
        for host in members:
            events += self._store.list_events(
                admin_pb.EventFilter(host_id=host), 0, EVENTS_PER_HOST, newest_first=True
            )
        failovers = self._store.list_failovers(row.group)
        audit = self._store.list_audit(0, AUDIT_SCAN)
        return report.timeline(row, events, failovers, audit)
