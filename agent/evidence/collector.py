"""Evidence for confirmed lockups, gathered off the event loop within a deadline.

A LOCKUP_CONFIRMED event waits for its evidence before it is published, and the events
made after it wait behind it (`InOrder`): events still leave in the order they were
made, the host_seq order that the spool and the controller rely on. Gathering runs in
a daemon thread of its own, so a /proc read that hangs holds up nothing else and
never keeps the agent from exiting; after `deadline` seconds the event leaves with
the evidence held in memory (the kernel log) and a note saying what is missing.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from agent.evidence.bounds import bound
from agent.evidence.facts import LockupFacts, in_memory
from agent.evidence.gather import gather
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

# Gathering takes milliseconds; this bounds what a hung read can add to detection time.
GATHER_DEADLINE = 1.0

Publish = Callable[[pb.Event], None]


@dataclass
class _Entry:
    event: pb.Event
    ready: bool


class InOrder:
    """Publishes events in the order they were made; a held one holds back those after it."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish
        self._queue: collections.deque[_Entry] = collections.deque()

    @property
    def held(self) -> int:
        """Events waiting: one held for its evidence and those behind it."""
        return len(self._queue)

    def put(self, event: pb.Event) -> None:
        if self._queue:
            self._queue.append(_Entry(event, ready=True))
        else:
            self._publish(event)

    def hold(self, event: pb.Event) -> _Entry:
        entry = _Entry(event, ready=False)
        self._queue.append(entry)
        return entry

    def release(self, entry: _Entry) -> None:
        entry.ready = True
        while self._queue and self._queue[0].ready:
            self._publish(self._queue.popleft().event)


class EvidenceCollector:
    def __init__(
        self,
        in_order: InOrder,
        deadline: float = GATHER_DEADLINE,
        gather_fn: Callable[[LockupFacts], pb.LockupEvidence] = gather,
    ) -> None:
        self._in_order = in_order
        self._deadline = deadline
        self._gather = gather_fn
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, event: pb.Event, facts: LockupFacts) -> None:
        """Publishes `event` (through the InOrder) once its evidence is attached."""
        entry = self._in_order.hold(event)
        task = asyncio.create_task(self._attach(entry, facts), name="evidence")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Publishes what is still gathering with the evidence in memory, and stops."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _attach(self, entry: _Entry, facts: LockupFacts) -> None:
        lockup: pb.LockupEvidence | None = None
        missing = "the agent stopped while gathering"
        try:
            lockup = await asyncio.wait_for(self._in_thread(facts), self._deadline)
        except TimeoutError:
            missing = f"reading /proc and /sys took over {self._deadline:g}s"
            log.warning("evidence for %s: %s", facts.mount, missing)
        except Exception as exc:
            missing = f"reading /proc and /sys failed: {exc}"
            log.exception("evidence for %s", facts.mount)
        finally:
            if lockup is None:
                lockup = in_memory(facts)
                lockup.notes.append(f"{missing}: only the kernel log is here")
                bound(lockup)
            entry.event.evidence.lockup.CopyFrom(lockup)
            self._in_order.release(entry)

    def _in_thread(self, facts: LockupFacts) -> asyncio.Future[pb.LockupEvidence]:
        done: concurrent.futures.Future[pb.LockupEvidence] = concurrent.futures.Future()

        def work() -> None:
            done.set_running_or_notify_cancel()
            try:
                done.set_result(self._gather(facts))
            except Exception as exc:
                done.set_exception(exc)

        threading.Thread(target=work, name="evidence", daemon=True).start()
        return asyncio.wrap_future(done)
