"""The agent's connection to the controller: one channel, deadlines on every call."""

from __future__ import annotations

import grpc

from agent.config import AgentConfig
from hangwatch.grpcopts import channel_options
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb


class ControllerLink:
    def __init__(self, config: AgentConfig) -> None:
        self._timeout = config.controller.rpc_timeout_seconds
        self._channel = grpc.aio.insecure_channel(
            config.controller.address, options=channel_options()
        )
        self._stub = agent_grpc.AgentServiceStub(self._channel)

    async def register(self, request: agent_pb.RegisterRequest) -> agent_pb.RegisterResponse:
        return await self._stub.Register(request, timeout=self._timeout)

    async def heartbeat(self, request: agent_pb.HeartbeatRequest) -> agent_pb.HeartbeatResponse:
        return await self._stub.Heartbeat(request, timeout=self._timeout)

    async def report_events(
        self, request: agent_pb.ReportEventsRequest
    ) -> agent_pb.ReportEventsResponse:
        return await self._stub.ReportEvents(request, timeout=self._timeout)

    def commands(
        self, request: agent_pb.CommandsRequest
    ) -> grpc.aio.UnaryStreamCall[agent_pb.CommandsRequest, pb.Command]:
        """The command stream: no deadline, it stays open for as long as it can."""
        return self._stub.Commands(request)

    async def report_command_result(
        self, request: agent_pb.ReportCommandResultRequest
    ) -> agent_pb.ReportCommandResultResponse:
        return await self._stub.ReportCommandResult(request, timeout=self._timeout)

    async def close(self) -> None:
        await self._channel.close()
