"""Keeps the agent registered with the controller and heartbeating, whatever happens.

The loop never gives up: a controller that is down or restarting is retried with
capped exponential backoff and jitter (tenacity), and a controller that forgot
this host (or this boot) is answered with a fresh registration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator

import grpc
from prometheus_client.core import GaugeMetricFamily, Metric

from agent.config import AgentConfig
from agent.link.backoff import retrying
from agent.link.channel import ControllerLink
from hangwatch import pbtime
from hangwatch.v1 import agent_service_pb2 as agent_pb

log = logging.getLogger(__name__)


class Session:
    def __init__(
        self,
        config: AgentConfig,
        link: ControllerLink,
        registration: Callable[[], agent_pb.RegisterRequest],
        heartbeat: Callable[[], agent_pb.HeartbeatRequest],
        registered: Callable[[agent_pb.RegisterResponse], None] = lambda _: None,
    ) -> None:
        """`registered` sees each answer to Register (the controller's last host_seq)."""
        self._config = config
        self._registered = registered
        self._link = link
        self._registration = registration
        self._heartbeat = heartbeat
        self.interval = config.heartbeat.interval_seconds
        self.connected = asyncio.Event()
        self.last_heartbeat_ok: float | None = None
        self._register_again = asyncio.Event()

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "hangwatch_controller_connected",
            "1 while the agent is registered and its heartbeats get through, else 0",
            value=float(self.connected.is_set()),
        )

    def register_again(self) -> None:
        """What the registration says changed (inventory, mounts): send it after this beat."""
        self._register_again.set()

    async def register(self) -> agent_pb.RegisterResponse:
        async for attempt in retrying(self._config.reconnect, "register", self.connected.clear):
            with attempt:
                response = await self._link.register(self._registration())
        interval = pbtime.seconds(response.heartbeat_interval)
        if interval > 0:
            self.interval = interval
        self._registered(response)
        self.connected.set()
        log.info("registered with the controller; heartbeat every %.1fs", self.interval)
        return response

    async def run(self) -> None:
        """Registers, then heartbeats forever; re-registers after any failure."""
        while True:
            await self.register()
            try:
                while True:
                    response = await self._link.heartbeat(self._heartbeat())
                    self.last_heartbeat_ok = time.monotonic()
                    if response.register_again:
                        log.info("controller asked for a new registration")
                        break
                    if self._register_again.is_set():
                        self._register_again.clear()
                        log.info("inventory changed: registering again")
                        break
                    await asyncio.sleep(self.interval)
            except grpc.aio.AioRpcError as exc:
                self.connected.clear()
                log.warning("heartbeat failed: %s %s", exc.code().name, exc.details())
