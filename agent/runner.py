"""The agent process: wires sources, health and the controller session together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from agent import inventory, mounts
from agent.config import AgentConfig
from agent.link import ControllerLink
from agent.session import Session
from hangwatch import __version__, pbtime
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)


async def run(config: AgentConfig) -> None:
    """Builds the agent inside the event loop (grpc.aio channels bind to it) and runs it."""
    await Agent(config).run()


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.started_at = time.time()
        self.boot_id = inventory.boot_id()
        self.inventory = inventory.collect()
        self.mounts = mounts.describe(config.mounts)
        self.health = {
            m.path: pb.MountHealth(
                mount=m.path, state=pb.HEALTH_STATE_OK, since=pbtime.timestamp(self.started_at)
            )
            for m in self.mounts
        }
        self.link = ControllerLink(config)
        self.session = Session(config, self.link, self.registration, self.heartbeat)

    def registration(self) -> agent_pb.RegisterRequest:
        return agent_pb.RegisterRequest(
            host_id=self.config.host_id,
            boot_id=self.boot_id,
            agent_version=__version__,
            mounts=self.mounts,
            inventory=self.inventory,
            agent_started_at=pbtime.timestamp(self.started_at),
        )

    def heartbeat(self) -> agent_pb.HeartbeatRequest:
        return agent_pb.HeartbeatRequest(
            host_id=self.config.host_id,
            boot_id=self.boot_id,
            mounts=list(self.health.values()),
            sent_at=pbtime.timestamp(time.time()),
        )

    async def run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info(
            "agent %s watching %d mounts: %s",
            self.config.host_id,
            len(self.mounts),
            ", ".join(m.path for m in self.mounts) or "(none)",
        )
        session = asyncio.create_task(self.session.run(), name="session")
        await stop.wait()
        log.info("stopping")
        session.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await session
        await self.link.close()
