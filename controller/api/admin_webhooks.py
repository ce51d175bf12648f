"""AdminService methods for webhook dead letters: list them, and requeue them (audited)."""

from __future__ import annotations

import time

from controller.api.auditlog import AuditLog
from controller.api.identity import caller
from controller.api.paging import Pager
from controller.api.rpc import Ctx, unary
from controller.config import ControllerConfig
from controller.notify.webhooks import Dispatcher
from controller.store.dbthread import DbThread
from controller.store.interface import Store
from hangwatch import pbtime
from hangwatch.errors import Invalid
from hangwatch.v1 import admin_service_pb2 as admin_pb

MAX_IDS = 1000


class WebhookAdmin:
    _store: Store
    _db: DbThread
    _config: ControllerConfig
    _webhooks: Dispatcher | None
    _audit_log: AuditLog

    def _sink(self, name: str) -> None:
        known = [w.name for w in self._config.webhooks]
        if name and name not in known:
            raise Invalid(
                "sink", f"no webhook sink {name[:80]!r} (known: {', '.join(known) or 'none'})"
            )

    @unary
    async def ListDeadLetters(
        self, request: admin_pb.ListDeadLettersRequest, context: Ctx
    ) -> admin_pb.ListDeadLettersResponse:
        self._sink(request.sink)
        pager = Pager(request, 100, MAX_IDS, key=(int,))
        after = int(pager.after[0]) if pager.after else 0
        rows = await self._db.run(
            self._store.list_dead_letters, request.sink, after, pager.size + 1
        )
        letters = (
            admin_pb.DeadLetter(
                id=r.id,
                sink=r.sink,
                event_id=r.event_id,
                attempts=r.attempts,
                last_error=r.last_error,
                failed_at=pbtime.timestamp(r.failed_at),
            )
            for r in rows
        )
        page, token = pager.fill(((d.id,), d) for d in letters)
        return admin_pb.ListDeadLettersResponse(dead_letters=page, next_page_token=token)

    @unary
    async def RetryDeadLetters(
        self, request: admin_pb.RetryDeadLettersRequest, context: Ctx
    ) -> admin_pb.RetryDeadLettersResponse:
        who = caller(context)
        self._sink(request.sink)
        if len(request.ids) > MAX_IDS:
            raise Invalid("ids", f"{len(request.ids)} ids, the limit is {MAX_IDS}")
        now = time.time()
        count = await self._db.run(
            self._store.requeue_dead_letters, request.sink, list(request.ids), now
        )
        which = ", ".join(str(i) for i in request.ids) if request.ids else "all"
        await self._audit_log.append(
            who,
            "retry dead letters",
            request.sink or "all sinks",
            f"ids: {which[:500]}; requeued {count}",
        )
        if self._webhooks is not None:
            self._webhooks.requeued(request.sink)
        return admin_pb.RetryDeadLettersResponse(requeued=count)
