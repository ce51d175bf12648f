"""Assembles the controller: store, servicers, health and reflection, on grpc.aio."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from controller.api.access import AccessGate
from controller.api.admin import AdminApi
from controller.api.agent import AgentApi
from controller.api.auditlog import AuditLog
from controller.api.certs import ServerTls, reload_on_sighup
from controller.api.identity import Identify
from controller.auditanchor import AuditAnchor
from controller.backends import open_store
from controller.config import ControllerConfig
from controller.failover.commandhub import CommandHub
from controller.failover.coordinator import Coordinator
from controller.failover.ledger import Ledger, timeouts
from controller.failover.snapshot import Snapshots
from controller.incidents.tracker import IncidentTracker
from controller.listening import EXCLUSIVE_PORT, listen
from controller.metrics import ControllerCollector, IngestMetrics
from controller.notify.announce import Announcer
from controller.notify.eventbus import CursorBus
from controller.notify.webhooks import Dispatcher
from controller.rpcmetrics import ServerMetrics
from controller.store import retention
from controller.store.dbthread import DbThread
from controller.store.interface import Store
from controller.storehealth import publish
from controller.upgrades.advisories import AdvisoryBook
from controller.upgrades.drafts import Draft, DraftBook
from controller.upgrades.driver import UpgradeDriver
from controller.upgrades.suspects import SuspectWatch
from hangwatch.addresses import parse_address
from hangwatch.grpcopts import server_options
from hangwatch.metrics import MetricsEndpoint
from hangwatch.sdnotify import Notifier
from hangwatch.tlsmetrics import CertificateExpiry
from hangwatch.v1 import admin_service_pb2, agent_service_pb2
from hangwatch.v1 import admin_service_pb2_grpc as admin_grpc
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    agent_service_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
)


async def serve(config: ControllerConfig) -> None:
    data_dir = Path(config.data_dir)
    opened = open_store(config)
    store = opened.store
    data_dir.mkdir(parents=True, exist_ok=True)  # the audit anchor lives there with etcd too
    audit_anchor = _audit_anchor(config, data_dir)
    db = DbThread()
    await db.run(audit_anchor.checkpoint, store)
    bus = CursorBus(await db.run(store.last_cursor))
    rpc_metrics = ServerMetrics()
    server_tls = None if config.insecure else ServerTls(config.tls)
    gate = AccessGate(
        Identify(None if server_tls is None else config.access),
        server_tls is not None,
        config.limits,
        AuditLog(store, db).refused,
    )
    server = grpc.aio.server(
        options=[*server_options(), *EXCLUSIVE_PORT], interceptors=[rpc_metrics, gate]
    )
    hub = CommandHub(lambda host: db.run(store.pending_commands, host))
    advisories = AdvisoryBook()
    advisories.load(await db.run(store.list_advisories))
    drafts = DraftBook()
    drafts.load(await db.run(store.list_drafts, True))
    snapshots = Snapshots(store, db, config, advisories.lookup, drafts.lookup)
    ledger = Ledger(store, db, hub, timeouts(config))
    webhooks = Dispatcher(config, store, db, bus, advisories.lookup)
    ingest = IngestMetrics()

    def stored(events: Sequence[pb.Event]) -> None:
        ingest.count(events)
        webhooks.offer(events)

    incidents = IncidentTracker(store, db, config, Announcer(store, db, bus, stored))
    ledger.listen(incidents.committed)
    coordinator = Coordinator(store, db, config, ledger, snapshots, incidents)
    upgrades = UpgradeDriver(store, db, config, ledger, snapshots)

    async def drafted(_: Draft) -> None:
        drafts.load(await db.run(store.list_drafts, True))
        coordinator.wake()

    suspects = SuspectWatch(store, db, bus, drafted)

    agent_grpc.add_AgentServiceServicer_to_server(
        AgentApi(store, db, bus, config, hub, coordinator, on_stored=stored), server
    )
    admin_grpc.add_AdminServiceServicer_to_server(
        AdminApi(
            store,
            db,
            bus,
            config,
            coordinator,
            ledger,
            snapshots,
            advisories,
            upgrades,
            drafts,
            webhooks=webhooks,
            audit_anchor=audit_anchor,
        ),
        server,
    )
    metrics = MetricsEndpoint(
        "controller",
        [
            ingest,
            ControllerCollector(
                store, db, snapshots, hub, bus, webhooks, asyncio.get_running_loop()
            ),
            rpc_metrics,
            audit_anchor,
            CertificateExpiry(lambda: None if server_tls is None else server_tls.material),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            *SERVICE_NAMES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    address = parse_address(config.listen, allow_port_zero=True)
    port = listen(server, address, None if server_tls is None else server_tls.credentials)
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    publish(store.condition, health_servicer, ("", SERVICE_NAMES[0]), asyncio.get_running_loop())
    transport = "plaintext, loopback only" if server_tls is None else "mutual TLS"
    log.info("listening on %s:%d (%s)", address.host, port, transport)
    announcing = asyncio.create_task(incidents.run(), name="incidents")
    coordinating = asyncio.create_task(coordinator.run(), name="coordinator")
    upgrading = asyncio.create_task(upgrades.run(), name="upgrades")
    pruning = asyncio.create_task(retention.run(store, db, config), name="event-retention")
    suspecting = asyncio.create_task(suspects.run(), name="suspects")
    webhooks.start()
    audit_anchor.start(store, db)
    metrics.start(config.metrics.listen)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    notifier = Notifier()
    serving = f"serving on {address.host}:{port}"
    loop.add_signal_handler(
        signal.SIGHUP, notifier.reload, lambda: reload_on_sighup(server_tls, serving)
    )
    watchdog = asyncio.create_task(_watchdog(notifier, db, store), name="watchdog")
    notifier.ready(serving)
    await stop.wait()
    log.info("shutting down")
    coordinating.cancel()
    upgrading.cancel()
    pruning.cancel()
    announcing.cancel()
    suspecting.cancel()
    notifier.stopping()
    watchdog.cancel()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace=2.0)
    metrics.stop()
    await webhooks.stop()
    await audit_anchor.stop(store, db)
    db.shutdown()
    opened.close()


def _audit_anchor(config: ControllerConfig, data_dir: Path) -> AuditAnchor:
    settings = config.audit
    return AuditAnchor(
        Path(settings.key_file or data_dir / "audit-anchor.key"),
        Path(settings.anchor_file or data_dir / "audit-anchor.json"),
        settings.anchor_interval_seconds,
    )


async def _watchdog(notifier: Notifier, db: DbThread, store: Store) -> None:
    """Pings systemd's watchdog only while the event loop turns and the store answers."""
    if notifier.watchdog_interval is None:
        return
    while True:
        try:
            await db.run(store.last_cursor)
        except Exception:
            log.exception("the store did not answer: withholding the watchdog ping")
        else:
            notifier.watchdog()
        await asyncio.sleep(min(1.0, notifier.watchdog_interval / 4))
