"""Events a previous run spooled and the controller never acknowledged, sent again.

They join the outbox in their host_seq place, and new events are numbered after
them. A spool on a frozen state dir must not hold up the agent: past
LOAD_TIMEOUT sending starts without it, and its events follow when it loads.
"""

from __future__ import annotations

import asyncio
import logging

from agent.events import EventFactory
from agent.link.outbox import Outbox
from agent.workers.spool import Spool
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

# A spool that has not answered its first load by then is reported; sending starts anyway.
LOAD_TIMEOUT = 3.0


async def replay_spool(spool: Spool, outbox: Outbox, events: EventFactory) -> None:
    """Starts the spool and queues what it held; returns once sending may start."""

    def merge(pending: list[pb.Event]) -> None:
        if pending:
            log.info("replaying %d spooled events", len(pending))
            events.bump_seq(max(e.host_seq for e in pending))
            outbox.merge(pending)

    loaded = await spool.start()
    try:
        merge(await asyncio.wait_for(asyncio.shield(loaded), LOAD_TIMEOUT))
    except TimeoutError:
        log.error(
            "the spool did not load within %.0fs; sending new events without it, and "
            "its events when it loads",
            LOAD_TIMEOUT,
        )
        loaded.add_done_callback(
            lambda done: merge(done.result()) if not done.exception() else None
        )
    except Exception as exc:
        log.error("the spool could not be read: %s", exc)
