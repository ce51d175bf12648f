"""AdminService methods for advisory drafts: the suspect kernels the controller named.

Accepting a draft makes it a normal advisory (hosts at risk, upgrade plans) in the same
transaction; dismissing it ends its hold on the failover ranking. Both are audited,
refusals included.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Awaitable, Callable

from controller.api import validate
from controller.api.admin_upgrades import MAX_REASON
from controller.api.auditlog import AuditLog
from controller.api.identity import Caller, caller
from controller.api.rpc import Ctx, unary
from controller.failover.coordinator import Coordinator
from controller.store.dbthread import DbThread
from controller.store.interface import AdvisoryRow, HostRecord, Store
from controller.upgrades import drafts
from controller.upgrades.advisories import AdvisoryBook
from controller.upgrades.drafts import Draft, DraftBook, DraftState, Sighting
from controller.upgrades.kernelversion import BadVersion, parse_range
from hangwatch import pbtime
from hangwatch.errors import Invalid, NotFound, Refused
from hangwatch.messages import enum_number
from hangwatch.v1 import admin_service_pb2 as admin_pb

_STATE = {s: enum_number(admin_pb.DraftState, s.value) for s in DraftState}


def draft_msg(
    draft: Draft, sightings: list[Sighting], hosts: list[HostRecord]
) -> admin_pb.AdvisoryDraft:
    on_kernel = [
        h.host_id
        for h in hosts
        if drafts.runs(draft, h.registration.inventory, h.registration.mounts)
    ]
    msg = admin_pb.AdvisoryDraft(
        id=draft.id,
        fingerprint=draft.fingerprint,
        kernel_release=draft.kernel,
        fs_type=draft.fs_type,
        rule=draft.rule,
        frames=draft.frames,
        signature=draft.signature,
        state=_STATE[draft.state],
        hosts_on_kernel=on_kernel,
        summary=drafts.summary(draft, sightings, on_kernel),
        created_at=pbtime.timestamp(draft.created_at),
        decided_by=draft.decided_by,
        decision_reason=draft.reason,
        advisory_id=draft.advisory_id,
    )
    if draft.decided_at is not None:
        msg.decided_at.CopyFrom(pbtime.timestamp(draft.decided_at))
    for s in sightings:
        msg.lockups.add(
            event_id=s.event_id, host_id=s.host_id, mount=s.mount, at=pbtime.timestamp(s.at)
        )
    return msg


class DraftAdmin:
    _store: Store
    _db: DbThread
    _coordinator: Coordinator
    _advisories: AdvisoryBook
    _drafts: DraftBook
    _audit_log: AuditLog
    _advisory_msgs: Callable[[], Awaitable[list[admin_pb.Advisory]]]

    async def _draft_msgs(self, found: list[Draft]) -> list[admin_pb.AdvisoryDraft]:
        sightings: dict[str, list[Sighting]] = collections.defaultdict(list)
        for s in await self._db.run(self._store.list_sightings):
            sightings[s.fingerprint].append(s)
        hosts = await self._db.run(self._store.list_hosts)
        return [draft_msg(d, sightings[d.fingerprint], hosts) for d in found]

    async def _open_draft(self, draft_id: str) -> Draft:
        validate.name(draft_id, "id")
        draft = await self._db.run(self._store.get_draft, draft_id)
        if draft is None:
            raise NotFound(f"no advisory draft {draft_id!r}")
        return draft

    @unary
    async def ListAdvisoryDrafts(
        self, request: admin_pb.ListAdvisoryDraftsRequest, context: Ctx
    ) -> admin_pb.ListAdvisoryDraftsResponse:
        found = await self._db.run(self._store.list_drafts, not request.all)
        return admin_pb.ListAdvisoryDraftsResponse(drafts=await self._draft_msgs(found))

    async def _decide(
        self,
        who: Caller,
        action: str,
        draft: Draft,
        decide: Callable[[], Draft],
        advisory: AdvisoryRow | None,
        detail: str,
    ) -> Draft:
        """Stores a person's decision (and the advisory it makes) with its audit entry."""
        try:
            decided = decide()
            audit = (who.name, who.role, action, detail)
            if not await self._db.run(self._store.decide_draft, decided, advisory, audit):
                exists = f", or an advisory {draft.id} exists already" if advisory else ""
                raise Refused(f"{draft.id} was decided meanwhile{exists}")
        except Refused as exc:
            await self._audit_log.refused(who, action, draft.id, exc)
            raise
        self._advisories.load(await self._db.run(self._store.list_advisories))
        self._drafts.load(await self._db.run(self._store.list_drafts, True))
        self._coordinator.wake()
        return decided

    @unary
    async def AcceptAdvisoryDraft(
        self, request: admin_pb.AcceptAdvisoryDraftRequest, context: Ctx
    ) -> admin_pb.Advisory:
        who = caller(context)
        draft = await self._open_draft(request.id)
        kernel_range = request.kernel_range or f"={draft.kernel}"
        try:
            parse_range(kernel_range)
        except BadVersion as exc:
            hint = "" if request.kernel_range else " (give one with --range)"
            raise Invalid("kernel_range", f"{exc}{hint}") from None
        validate.text(request.reason, "reason", MAX_REASON)
        validate.text(request.url, "url", 2048)
        now = time.time()
        reason = request.reason or f"lockups with signature {draft.signature}"
        advisory = AdvisoryRow(
            draft.id, kernel_range, draft.fs_type, reason, request.url, now, who.name
        )
        on = f" on {draft.fs_type}" if draft.fs_type else ""
        await self._decide(
            who,
            "advisory accept",
            draft,
            lambda: drafts.accept(draft, who.name, now, reason),
            advisory,
            f"kernel {kernel_range}{on}: {reason}",
        )
        msgs = await self._advisory_msgs()
        return next(m for m in msgs if m.id == draft.id)

    @unary
    async def DismissAdvisoryDraft(
        self, request: admin_pb.DismissAdvisoryDraftRequest, context: Ctx
    ) -> admin_pb.AdvisoryDraft:
        who = caller(context)
        draft = await self._open_draft(request.id)
        validate.text(request.reason, "reason", MAX_REASON, required=True)
        dismissed = await self._decide(
            who,
            "advisory dismiss",
            draft,
            lambda: drafts.dismiss(draft, who.name, time.time(), request.reason),
            None,
            request.reason,
        )
        return (await self._draft_msgs([dismissed]))[0]
