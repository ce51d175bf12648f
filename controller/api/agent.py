"""AgentService: registration, heartbeats and idempotent event ingest."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence

from controller.api import validate
from controller.api.auditlog import AuditLog
from controller.api.identity import AGENT, Caller
from controller.api.rpc import Ctx, streaming, unary
from controller.config import ControllerConfig
from controller.failover.commandhub import CommandHub
from controller.failover.coordinator import Coordinator
from controller.notify.eventbus import CursorBus
from controller.store.dbthread import DbThread
from controller.store.interface import Store
from hangwatch import pbtime
from hangwatch.errors import NotFound
from hangwatch.messages import enum_label
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)


class AgentApi(agent_grpc.AgentServiceServicer):
    def __init__(
        self,
        store: Store,
        db: DbThread,
        bus: CursorBus,
        config: ControllerConfig,
        hub: CommandHub,
        coordinator: Coordinator,
        on_stored: Callable[[Sequence[pb.Event]], None] = lambda _: None,
    ) -> None:
        self._store = store
        self._db = db
        self._bus = bus
        self._config = config
        self._hub = hub
        self._coordinator = coordinator
        self._audit_log = AuditLog(store, db)
        # Told of each newly stored event after its commit (webhooks, metrics); never blocks.
        self._on_stored = on_stored

    @unary
    async def Register(
        self, request: agent_pb.RegisterRequest, context: Ctx
    ) -> agent_pb.RegisterResponse:
        validate.register(request)
        await self._db.run(self._store.register_host, request, time.time())
        last_seq = await self._db.run(self._store.last_host_seq, request.host_id)
        log.info(
            "host %s registered (boot %s, %d mounts)",
            request.host_id,
            request.boot_id[:8],
            len(request.mounts),
            extra={"host": request.host_id},
        )
        return agent_pb.RegisterResponse(
            heartbeat_interval=pbtime.duration(self._config.liveness.heartbeat_interval_seconds),
            server_time=pbtime.timestamp(time.time()),
            last_host_seq=last_seq,
        )

    @unary
    async def Heartbeat(
        self, request: agent_pb.HeartbeatRequest, context: Ctx
    ) -> agent_pb.HeartbeatResponse:
        validate.heartbeat(request)
        known = await self._db.run(self._store.record_heartbeat, request, time.time())
        return agent_pb.HeartbeatResponse(register_again=not known)

    @unary
    async def ReportEvents(
        self, request: agent_pb.ReportEventsRequest, context: Ctx
    ) -> agent_pb.ReportEventsResponse:
        validate.report_events(request)
        if request.events:
            stored = await self._db.run(self._store.add_events, request.events, time.time())
            if stored:
                self._on_stored(stored)
            await self._bus.advance(await self._db.run(self._store.last_cursor))
        # add_events returned only after COMMIT: every id is durable now (each once).
        return agent_pb.ReportEventsResponse(
            acked_ids=list(dict.fromkeys(e.id for e in request.events))
        )

    @streaming
    async def Commands(
        self, request: agent_pb.CommandsRequest, context: Ctx
    ) -> AsyncIterator[pb.Command]:
        validate.host_id(request.host_id)
        log.info("command stream of %s opened", request.host_id)
        async for command in self._hub.stream(request.host_id):
            yield command

    @unary
    async def ReportCommandResult(
        self, request: agent_pb.ReportCommandResultRequest, context: Ctx
    ) -> agent_pb.ReportCommandResultResponse:
        result = request.result
        validate.command_result(result)
        # A repeat (a resend after a lost answer, or a flood) is acknowledged and does
        # nothing: only a command's first result is audited and wakes the coordinator.
        before = await self._db.run(self._store.command_results, [result.command_id])
        if result.command_id in before and before[result.command_id].host_id == result.host_id:
            return agent_pb.ReportCommandResultResponse()
        known = await self._db.run(self._store.record_command_result, result, time.time())
        if not known:
            raise NotFound(f"no command {result.command_id!r} for {result.host_id!r}")
        status = enum_label(pb.CommandStatus, result.status)
        if result.status == pb.COMMAND_STATUS_STALE_EPOCH:
            # The agent's refusal is itself worth keeping: someone sent an old epoch.
            await self._audit_log.append(
                Caller(result.host_id, AGENT),
                "refuse stale epoch",
                result.host_id,
                f"{result.command_id}: epoch {result.epoch} < known {result.known_epoch}",
                allowed=False,
            )
        log.log(
            logging.INFO if result.status == pb.COMMAND_STATUS_SUCCEEDED else logging.WARNING,
            "command %s on %s: %s (exit %d)",
            result.command_id,
            result.host_id,
            status,
            result.exit_code,
            extra={"host": result.host_id, "command": result.command_id},
        )
        self._coordinator.wake()
        return agent_pb.ReportCommandResultResponse()
