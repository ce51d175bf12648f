"""AdminService: an incident's evidence, whole, for a vendor bug report.

The incident (with its timeline) and its confirmed lockups with their evidence, each
with the fingerprint the controller took and the advisory draft it belongs to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from controller.api.rpc import Ctx, unary
from controller.config import ControllerConfig
from controller.incidents import evidence
from controller.store.dbthread import DbThread
from controller.store.interface import Store
from controller.upgrades.drafts import draft_id
from controller.upgrades.suspects import fingerprint_of
from hangwatch.errors import NotFound
from hangwatch.v1 import admin_service_pb2 as admin_pb


class EvidenceAdmin:
    _store: Store
    _db: DbThread
    _config: ControllerConfig
    GetIncident: Callable[[admin_pb.GetIncidentRequest, Ctx], Awaitable[admin_pb.Incident]]

    @unary
    async def GetIncidentEvidence(
        self, request: admin_pb.GetIncidentEvidenceRequest, context: Ctx
    ) -> admin_pb.IncidentEvidence:
        incident = await self.GetIncident(admin_pb.GetIncidentRequest(id=request.id), context)
        return await self._db.run(self._evidence, incident)

    def _evidence(self, incident: admin_pb.Incident) -> admin_pb.IncidentEvidence:
        row = self._store.get_incident(incident.id)
        if row is None:  # the request was checked: only a store that lost it
            raise NotFound(f"no incident {incident.id}")
        members = next(
            (g.members for g in self._config.groups if g.name == row.group), [row.host_id]
        )
        out = admin_pb.IncidentEvidence(incident=incident)
        for event in evidence.lockup_events(self._store, row, members):
            out.lockups.append(event)
            fp = fingerprint_of(self._store, event)
            out.signatures[event.id] = f"{fp.signature} on kernel {fp.kernel} ({fp.id})"
            if self._store.get_draft(draft_id(fp.id)) is not None:
                out.drafts[event.id] = draft_id(fp.id)
        return out
