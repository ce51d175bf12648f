"""AdminService methods for incidents: list them, show one as a timeline, as the internal
report, or as the customer status page."""

from __future__ import annotations

import time

from controller.api.paging import Pager
from controller.api.rpc import Ctx, unary
from controller.config import ControllerConfig
from controller.incidents import evidence, facts, report, statuspage
from controller.store.dbthread import DbThread
from controller.store.interface import IncidentRow, Store
from controller.upgrades.advisories import AdvisoryBook
from hangwatch import pbtime
from hangwatch.errors import Invalid, NotFound
from hangwatch.ids import is_ulid
from hangwatch.v1 import admin_service_pb2 as admin_pb

FORMATS = ("", "markdown", "status")


class IncidentAdmin:
    _store: Store
    _db: DbThread
    _config: ControllerConfig
    _advisories: AdvisoryBook

    def _message(self, row: IncidentRow) -> admin_pb.Incident:
        msg = admin_pb.Incident(
            id=row.id,
            group=row.group,
            host_id=row.host_id,
            mount=row.mount,
            started_at=pbtime.timestamp(row.started_at),
            open=row.ended_at is None,
        )
        if row.ended_at is not None:
            msg.ended_at.CopyFrom(pbtime.timestamp(row.ended_at))
        if row.restored_at is not None:
            msg.restored_at.CopyFrom(pbtime.timestamp(row.restored_at))
        return msg

    @unary
    async def ListIncidents(
        self, request: admin_pb.ListIncidentsRequest, context: Ctx
    ) -> admin_pb.ListIncidentsResponse:
        pager = Pager(request, 100, 1000, key=(float, str))
        before = (float(pager.after[0]), str(pager.after[1])) if pager.after else None
        rows = await self._db.run(
            self._store.list_incidents, request.open_only, pager.size + 1, before
        )
        page, token = pager.fill(((r.started_at, r.id), self._message(r)) for r in rows)
        return admin_pb.ListIncidentsResponse(incidents=page, next_page_token=token)

    @unary
    async def GetIncident(
        self, request: admin_pb.GetIncidentRequest, context: Ctx
    ) -> admin_pb.Incident:
        if not is_ulid(request.id):
            raise Invalid("id", f"{request.id[:40]!r} is not an incident id")
        if request.format not in FORMATS:
            raise Invalid("format", f"{request.format[:20]!r}: use '', 'markdown' or 'status'")
        row = await self._db.run(self._store.get_incident, request.id)
        if row is None:
            raise NotFound(f"no incident {request.id}")
        now = time.time()
        found = await self._db.run(
            facts.gather, self._store, self._config, self._advisories.lookup, row, now
        )
        msg = self._message(row)
        msg.advisories.extend(found.advisories)
        msg.related.extend(r.id for r in found.related)
        msg.status = found.stage
        group = self._config.group(row.group)
        members = list(group.members) if group else [row.host_id]
        lockups = await self._db.run(evidence.lockup_events, self._store, row, members)
        msg.evidence.extend(e.id for e in lockups)
        for e in found.entries:
            msg.timeline.add(at=pbtime.timestamp(e.at), kind=e.kind, text=e.text, ref=e.ref)
        if request.format == "markdown":
            msg.rendered = report.markdown(
                row, found.entries, members, found.advisories, found.related, now
            )
        elif request.format == "status":
            msg.rendered = statuspage.page(
                facts.story(found),
                facts.audience(self._config, row.group),
                self._config.incidents.next_update_minutes,
            )
        return msg
