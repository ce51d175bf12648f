"""The agent's connection to the controller: one channel, deadlines on every call.

With mutual TLS a certificate the controller refuses looks like a controller that
is down (UNAVAILABLE "Socket closed"). After an UNAVAILABLE the link checks the
handshake itself (`hangwatch.tls.diagnose`, at most every DIAGNOSE_EVERY seconds)
and raises CertificateRefused instead, which is logged at error level, counted,
shown in the systemd status and retried only at the longest backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from agent.config import AgentConfig
from hangwatch import tls
from hangwatch.addresses import parse_address
from hangwatch.grpcmetrics import CallCounts
from hangwatch.grpcopts import channel_options
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

DIAGNOSE_EVERY = 5.0
# The method label of the command stream (counted by whoever follows it).
COMMANDS = "AgentService/Commands"
Resp = TypeVar("Resp")


class CertificateRefused(grpc.aio.AioRpcError):
    """An UNAVAILABLE that is the controller refusing TLS with this agent's files."""

    def __init__(self, cause: grpc.aio.AioRpcError, why: str) -> None:
        super().__init__(
            cause.code(), grpc.aio.Metadata(), grpc.aio.Metadata(), f"{tls.REFUSED}: {why}"
        )


class ControllerLink:
    def __init__(self, config: AgentConfig) -> None:
        settings = config.controller
        self._settings = settings
        self._timeout = settings.rpc_timeout_seconds
        self._files = None if settings.insecure else tls.TlsFiles.in_section(settings, "controller")
        # Why the controller refuses our certificate, while it does; and how often it did.
        self.refused: str | None = None
        self.refusals = 0
        self._diagnosed_at = -DIAGNOSE_EVERY
        self._diagnosing = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        # Every call by method and code, and the TLS files in use (for metrics).
        self.calls = CallCounts("client")
        self.material: tls.TlsMaterial | None = None
        self._channel, self._stub = self._connect()

    def _connect(self) -> tuple[grpc.aio.Channel, agent_grpc.AgentServiceAsyncStub]:
        address = self._settings.address
        if self._files is None:
            channel = grpc.aio.insecure_channel(address, options=channel_options())
        else:
            material = tls.load(self._files)
            credentials = tls.channel_credentials(material)
            self.material = material
            options = [*channel_options(), *tls.name_override(self._settings.server_name)]
            channel = grpc.aio.secure_channel(address, credentials, options=options)
        return channel, agent_grpc.AgentServiceStub(channel)

    def reload(self) -> None:
        """SIGHUP: a new channel with the files read again; calls still running on the
        old channel (the command stream) get rpc_timeout_seconds to finish."""
        if self._files is None:
            log.warning("SIGHUP: plaintext, nothing to re-read; other settings apply on restart")
            return
        try:
            channel, stub = self._connect()
        except tls.TlsError as exc:
            log.error("SIGHUP: keeping the certificates in use: %s", exc)
            return
        old, self._channel, self._stub = self._channel, channel, stub
        task = asyncio.get_running_loop().create_task(old.close(grace=self._timeout))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        self._diagnosed_at = -DIAGNOSE_EVERY
        log.info("SIGHUP: certificates re-read; other settings apply on restart")

    async def _call(self, name: str, method: Callable[..., Awaitable[Resp]], request: Any) -> Resp:
        try:
            response = await method(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            self.calls.count(f"AgentService/{name}", exc.code())
            if exc.code() == grpc.StatusCode.UNAVAILABLE and self._files is not None:
                why = await self._diagnose()
                if why:
                    raise CertificateRefused(exc, why) from exc
            raise
        self.calls.count(f"AgentService/{name}", grpc.StatusCode.OK)
        if self.refused:
            log.info("the controller accepts this agent's certificate again")
            self.refused = None
        return response

    async def _diagnose(self) -> str | None:
        """Why the controller refuses TLS, or None; one probe serves every waiting call."""
        assert self._files is not None
        async with self._diagnosing:
            if time.monotonic() - self._diagnosed_at >= DIAGNOSE_EVERY:
                address = parse_address(self._settings.address)
                try:
                    why = await asyncio.wait_for(
                        asyncio.to_thread(
                            tls.diagnose,
                            address,
                            self._files,
                            self._settings.server_name,
                            self._timeout,
                        ),
                        self._timeout * 2,
                    )
                except (TimeoutError, OSError, ValueError):
                    why = None
                self._diagnosed_at = time.monotonic()
                if why and why != self.refused:
                    log.error(
                        "%s by the controller at %s: %s", tls.REFUSED, self._settings.address, why
                    )
                self.refused = why
            if self.refused:
                self.refusals += 1
            return self.refused

    async def register(self, request: agent_pb.RegisterRequest) -> agent_pb.RegisterResponse:
        return await self._call("Register", self._stub.Register, request)

    async def heartbeat(self, request: agent_pb.HeartbeatRequest) -> agent_pb.HeartbeatResponse:
        return await self._call("Heartbeat", self._stub.Heartbeat, request)

    async def report_events(
        self, request: agent_pb.ReportEventsRequest
    ) -> agent_pb.ReportEventsResponse:
        return await self._call("ReportEvents", self._stub.ReportEvents, request)

    def commands(
        self, request: agent_pb.CommandsRequest
    ) -> grpc.aio.UnaryStreamCall[agent_pb.CommandsRequest, pb.Command]:
        """The command stream: no deadline, it stays open for as long as it can."""
        return self._stub.Commands(request)

    async def report_command_result(
        self, request: agent_pb.ReportCommandResultRequest
    ) -> agent_pb.ReportCommandResultResponse:
        return await self._call("ReportCommandResult", self._stub.ReportCommandResult, request)

    async def close(self) -> None:
        await self._channel.close()
