"""Sends queued events to the controller in acknowledged batches, in host_seq order.

A batch is resent until the controller acknowledges its ids (ingest is idempotent
by id, so a resend after a lost answer stores nothing twice); acknowledged ids
leave the outbox and the spool. Retries back off exponentially with jitter, capped.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from agent.config import AgentConfig
from agent.link.backoff import retrying
from agent.link.channel import ControllerLink
from agent.link.outbox import Outbox
from agent.workers.spool import Spool
from hangwatch.grpcopts import MAX_MESSAGE_BYTES
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

BATCH_SIZE = 500
# Half the 4 MiB message limit: a batch of lockups with their evidence still fits.
BATCH_BYTES = MAX_MESSAGE_BYTES // 2
# Answers that resending cannot change: the event itself is wrong.
REFUSALS = frozenset({grpc.StatusCode.INVALID_ARGUMENT})


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
        self.refused = 0

    async def run(self, ready: asyncio.Event) -> None:
        """Sends for ever once `ready` is set (the spool was replayed or given up on)."""
        await ready.wait()
        size = BATCH_SIZE
        while True:
            batch = self._outbox.batch(size, BATCH_BYTES)
            if not batch:
                await self._outbox.wait(timeout=1.0)
                continue
            request = agent_pb.ReportEventsRequest(host_id=self._config.host_id, events=batch)
            try:
                async for attempt in retrying(
                    self._config.reconnect,
                    f"sending {len(batch)} events",
                    self._count_failure,
                    final=REFUSALS,
                ):
                    with attempt:
                        response = await self._link.report_events(request)
            except grpc.aio.AioRpcError as exc:
                size = self._refused(batch, exc)
                continue
            size = BATCH_SIZE
            self._done(list(response.acked_ids))

    def _refused(self, batch: list[pb.Event], exc: grpc.aio.AioRpcError) -> int:
        """The controller refused the batch: find the event it refuses and drop that one.

        Resending a refused event for ever would hold back every event behind it, so a
        batch is retried one event at a time, and a single refused event is dropped,
        loudly, and counted.
        """
        if len(batch) > 1:
            return 1
        log.error(
            "the controller refused event %s (%s): %s %s; dropping it",
            batch[0].id,
            batch[0].kind,
            exc.code().name,
            exc.details(),
        )
        self.refused += 1
        self._done([batch[0].id])
        return 1

    def _done(self, ids: list[str]) -> None:
        self.sent += self._outbox.ack(ids)
        self._spool.remove(ids)

    def _count_failure(self) -> None:
        self.failures += 1
