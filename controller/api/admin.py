"""AdminService: what people and incident tooling ask of the controller.

Hosts and events are answered here; failovers, maintenance and audit in
`controller.api.admin_failovers`. Methods of later parts of the API answer
UNIMPLEMENTED (the generated base class does that) until they exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from controller.api import validate
from controller.api.admin_drafts import DraftAdmin
from controller.api.admin_evidence import EvidenceAdmin
from controller.api.admin_failovers import FailoverAdmin
from controller.api.admin_hosts import HostAdmin
from controller.api.admin_incidents import IncidentAdmin
from controller.api.admin_upgrades import UpgradeAdmin
from controller.api.admin_webhooks import WebhookAdmin
from controller.api.auditlog import AuditLog
from controller.api.paging import Pager
from controller.api.rpc import Ctx, streaming, unary
from controller.auditanchor import AuditAnchor
from controller.config import ControllerConfig
from controller.failover.coordinator import Coordinator
from controller.failover.ledger import Ledger
from controller.failover.liveness import liveness
from controller.failover.snapshot import Snapshots
from controller.notify.eventbus import CursorBus
from controller.notify.webhooks import Dispatcher
from controller.store.dbthread import DbThread
from controller.store.interface import HostRecord, Store
from controller.upgrades.advisories import AdvisoryBook
from controller.upgrades.drafts import DraftBook
from controller.upgrades.driver import UpgradeDriver
from hangwatch import pbtime
from hangwatch.errors import Invalid, NotFound
from hangwatch.ids import is_kind
from hangwatch.messages import enum_number
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import admin_service_pb2_grpc as admin_grpc
from hangwatch.v1 import types_pb2 as pb

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
WATCH_BATCH = 500
# A watcher re-checks the store at least this often even without a wake-up.
WATCH_RECHECK_SECONDS = 1.0


class AdminApi(
    FailoverAdmin,
    HostAdmin,
    IncidentAdmin,
    EvidenceAdmin,
    WebhookAdmin,
    UpgradeAdmin,
    DraftAdmin,
    admin_grpc.AdminServiceServicer,
):
    def __init__(
        self,
        store: Store,
        db: DbThread,
        bus: CursorBus,
        config: ControllerConfig,
        coordinator: Coordinator,
        ledger: Ledger,
        snapshots: Snapshots,
        advisories: AdvisoryBook,
        upgrades: UpgradeDriver,
        drafts: DraftBook,
        webhooks: Dispatcher | None = None,
        audit_anchor: AuditAnchor | None = None,
    ) -> None:
        self._store = store
        self._db = db
        self._bus = bus
        self._config = config
        self._coordinator = coordinator
        self._ledger = ledger
        self._snapshots = snapshots
        self._advisories = advisories
        self._upgrades = upgrades
        self._drafts = drafts
        self._webhooks = webhooks
        self._audit_log = AuditLog(store, db)
        self._audit_anchor = audit_anchor

    async def _hosts(self, records: list[HostRecord]) -> list[admin_pb.Host]:
        """Host messages with what the cluster picture adds: roles, risk, maintenance."""
        state = await self._state()
        out = []
        for record in records:
            host = self._host(record, state.now)
            view = state.hosts.get(record.host_id)
            if view is not None:
                # As the failover engine sees it (a restarted controller's view).
                host.liveness = enum_number(pb.Liveness, view.liveness)
                host.advisories.extend(view.advisories)
                host.in_maintenance = view.maintenance or state.cluster_maintenance
            host.needs_clear = bool(record.needs_clear)
            host.needs_clear_reason = record.needs_clear
            for group in state.groups:
                if record.host_id in group.members:
                    role = "primary" if group.primary == record.host_id else "standby"
                    host.roles.append(f"{group.name}={role}")
            out.append(host)
        return out

    def _host(self, record: HostRecord, now: float) -> admin_pb.Host:
        reg = record.registration
        live = self._config.liveness
        host = admin_pb.Host(
            host_id=record.host_id,
            liveness=liveness(
                record.last_heartbeat_at,
                now,
                live.stale_after_seconds,
                live.unreachable_after_seconds,
            ),
            boot_id=record.boot_id,
            agent_version=record.agent_version,
            inventory=reg.inventory,
            mounts=reg.mounts,
            registered_at=pbtime.timestamp(record.registered_at),
        )
        if record.last_heartbeat_at is not None:
            host.last_heartbeat_at.CopyFrom(pbtime.timestamp(record.last_heartbeat_at))
            host.heartbeat_age.CopyFrom(pbtime.duration(max(0.0, now - record.last_heartbeat_at)))
        if record.last_heartbeat is not None:
            host.health.extend(record.last_heartbeat.mounts)
            host.sources.extend(record.last_heartbeat.sources)
            host.spool_depth = record.last_heartbeat.spool_depth
        return host

    @unary
    async def ListHosts(
        self, request: admin_pb.ListHostsRequest, context: Ctx
    ) -> admin_pb.ListHostsResponse:
        pager = Pager(request, DEFAULT_LIMIT, MAX_LIMIT)
        after = str(pager.after[0]) if pager.after else ""
        records = await self._db.run(self._store.list_hosts, after, pager.size + 1)
        hosts = await self._hosts(records)
        page, token = pager.fill(((h.host_id,), h) for h in hosts)
        return admin_pb.ListHostsResponse(hosts=page, next_page_token=token)

    @unary
    async def GetHost(self, request: admin_pb.GetHostRequest, context: Ctx) -> admin_pb.Host:
        validate.host_id(request.host_id)
        record = await self._db.run(self._store.get_host, request.host_id)
        if record is None:
            raise NotFound(f"no host {request.host_id!r}")
        return (await self._hosts([record]))[0]

    @unary
    async def ListEvents(
        self, request: admin_pb.ListEventsRequest, context: Ctx
    ) -> admin_pb.ListEventsResponse:
        hosts = self._filter(request.filter)
        pager = Pager(request, DEFAULT_LIMIT, MAX_LIMIT, key=(int,))
        since, before = request.since_cursor, 0
        if pager.after is not None:
            last = int(pager.after[0])
            since, before = (since, last) if request.newest_first else (max(since, last), 0)
        events = await self._db.run(
            self._store.list_events,
            request.filter,
            since,
            pager.size + 1,
            request.newest_first,
            hosts,
            before,
        )
        page, token = pager.fill(((e.cursor,), e) for e in events)
        return admin_pb.ListEventsResponse(events=page, next_page_token=token)

    @streaming
    async def WatchEvents(
        self, request: admin_pb.WatchEventsRequest, context: Ctx
    ) -> AsyncIterator[pb.Event]:
        hosts = self._filter(request.filter)
        cursor = request.since_cursor
        while True:
            # The bus position is read before the store: an event stored after the
            # read wakes the wait below, so nothing stored is ever slept through.
            seen = self._bus.cursor
            events = await self._db.run(
                self._store.list_events, request.filter, cursor, WATCH_BATCH, False, hosts
            )
            for event in events:
                yield event
                cursor = event.cursor
            if len(events) < WATCH_BATCH:
                # Everything up to `seen` was committed before the query, which found
                # all its matches: the next query starts past it, not at the last match.
                cursor = max(seen, cursor)
                await self._bus.wait_beyond(cursor, WATCH_RECHECK_SECONDS)

    def _filter(self, flt: admin_pb.EventFilter) -> list[str] | None:
        """Checks the filter; returns the members of its group (None: no group)."""
        _check_filter(flt)
        if not flt.group:
            return None
        for group in self._config.groups:
            if group.name == flt.group:
                return list(group.members)
        known = ", ".join(g.name for g in self._config.groups) or "none"
        raise Invalid("filter.group", f"no group {flt.group!r} (known: {known})")


def _check_filter(flt: admin_pb.EventFilter) -> None:
    if flt.host_id:
        validate.host_id(flt.host_id, "filter.host_id")
    if flt.kind and not is_kind(flt.kind):
        raise Invalid("filter.kind", f"{flt.kind[:80]!r} is not UPPER_SNAKE_CASE")
    if flt.min_severity:
        validate.enum_value(flt.min_severity, pb.Severity, "filter.min_severity")
    if flt.mount:
        validate.path(flt.mount, "filter.mount")
    validate.text(flt.group, "filter.group", 128)
