"""A refused event must not hold back the events behind it.

The real reporter, outbox and spool worker, against a minimal AgentService on
loopback that refuses one particular event the way the controller refuses a
malformed one (INVALID_ARGUMENT).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc

from agent.config import AgentConfig, ControllerSettings, ReconnectSettings
from agent.events import EventFactory, droppable
from agent.link.channel import ControllerLink
from agent.link.outbox import Outbox
from agent.link.reporter import Reporter
from agent.signals import Severity, Signal
from agent.workers.spool import Spool
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from lab.localcluster import free_port


class Refusing(agent_grpc.AgentServiceServicer):
    def __init__(self) -> None:
        self.stored: list[str] = []

    async def ReportEvents(self, request, context):
        for i, event in enumerate(request.events):
            if event.summary == "bad":
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"events[{i}].summary: refused for the test"
                )
        self.stored += [e.summary for e in request.events if e.summary not in self.stored]
        return agent_pb.ReportEventsResponse(acked_ids=[e.id for e in request.events])


def test_one_refused_event_is_dropped_and_the_rest_delivered(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], int]:
        port = free_port()
        server = grpc.aio.server()
        servicer = Refusing()
        agent_grpc.add_AgentServiceServicer_to_server(servicer, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        config = AgentConfig(
            host_id="h1",
            state_dir=str(tmp_path),
            controller=ControllerSettings(address=f"127.0.0.1:{port}", insecure=True),
            reconnect=ReconnectSettings(initial_backoff_seconds=0.05, max_backoff_seconds=0.2),
        )
        link = ControllerLink(config)
        outbox = Outbox(1000, droppable)
        spool = Spool(tmp_path / "spool.db", 1000)
        await spool.start()
        factory = EventFactory("h1")
        for summary in ["a", "b", "bad", "c", "d"]:
            outbox.put(
                factory.from_signal(
                    Signal(
                        source="test",
                        kind="TEST_EVENT",
                        severity=Severity.WARNING,
                        summary=summary,
                        at=time.time(),
                    )
                )
            )
        reporter = Reporter(config, link, outbox, spool)
        ready = asyncio.Event()
        ready.set()
        task = asyncio.create_task(reporter.run(ready))
        deadline = time.monotonic() + 10
        while len(outbox) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        task.cancel()
        await spool.close()
        await link.close()
        await server.stop(None)
        return servicer.stored, reporter.refused

    stored, refused = asyncio.run(scenario())
    assert stored == ["a", "b", "c", "d"]
    assert refused == 1
