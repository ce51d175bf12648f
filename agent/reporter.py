"""Sends queued events to the controller in acknowledged batches, in host_seq order.

A batch is resent until the controller acknowledges its ids (ingest is idempotent
by id, so a resend after a lost answer stores nothing twice); acknowledged ids
leave the outbox and the spool. Retries back off exponentially with jitter, capped.
"""

from __future__ import annotations

import asyncio
import logging

from agent.backoff import retrying
from agent.config import AgentConfig
from agent.link import ControllerLink
from agent.outbox import Outbox
from agent.spool import Spool
from hangwatch.v1 import agent_service_pb2 as agent_pb

log = logging.getLogger(__name__)

BATCH_SIZE = 500


class Reporter:
    def __init__(
        self, config: AgentConfig, link: ControllerLink, outbox: Outbox, spool: Spool
    ) -> None:
        self._config = config
        self._link = link
        self._outbox = outbox
        self._spool = spool
        self.sent = 0
        self.failures = 0

    async def run(self, ready: asyncio.Event) -> None:
        """Sends for ever once `ready` is set (the spool was replayed or given up on)."""
        await ready.wait()
        while True:
            batch = self._outbox.batch(BATCH_SIZE)
            if not batch:
                await self._outbox.wait(timeout=1.0)
                continue
            request = agent_pb.ReportEventsRequest(host_id=self._config.host_id, events=batch)
            async for attempt in retrying(
                self._config.reconnect, f"sending {len(batch)} events", self._count_failure
            ):
                with attempt:
                    response = await self._link.report_events(request)
            acked = list(response.acked_ids)
            self.sent += self._outbox.ack(acked)
            self._spool.remove(acked)

    def _count_failure(self) -> None:
        self.failures += 1
