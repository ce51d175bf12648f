"""The durable spool: events not yet acknowledged, in SQLite (WAL) in the state dir.

The worker keeps the events in SQLite (WAL). Why SQLite over an append-only
file: an acknowledgement deletes rows in any order, a crash mid-write is rolled
back rather than leaving a torn record, and the bound is a COUNT away, all
without writing a log-compaction scheme.

All spool I/O runs in a child process (`agent.workers.spool_worker`), because the state
dir may sit on a filesystem that freezes (docs/design.md#1-no-waiting). A thread would not do: a
thread stuck in D state keeps the whole agent from exiting until the thaw, while
a stuck child is simply left behind. The agent writes requests to the child's
pipe and never waits for an answer; `busy_for()` tells how long the oldest
unanswered request has waited, so the agent reports a stuck spool while events
keep flowing from memory.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from agent.events import droppable
from agent.workers.childproc import python_argv
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

# Longest line between agent and worker (a load of a full spool comes in one line).
MAX_LINE = 512 * 1024 * 1024
# Requests buffered towards a worker that stopped reading before the agent gives up on it.
MAX_BUFFERED = 16 * 1024 * 1024


class Spool:
    """The agent's handle on the spool worker. No method waits on the disk."""

    def __init__(self, path: Path, limit: int, flush_interval: float = 0.02) -> None:
        self._path = path
        self._limit = limit
        self._flush_interval = flush_interval
        self._proc: asyncio.subprocess.Process | None = None
        self._pending_appends: list[pb.Event] = []
        # Set by append(): the flush loop sleeps until there is something to flush.
        self._appended = asyncio.Event()
        # Send times of requests not yet answered, oldest first.
        self._outstanding: collections.deque[float] = collections.deque()
        self._loaded: asyncio.Future[list[pb.Event]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.depth = 0
        self.dropped = 0
        self.failed = ""

    async def start(self) -> asyncio.Future[list[pb.Event]]:
        """Starts the worker; the returned future resolves with what the spool held."""
        loop = asyncio.get_running_loop()
        self._loaded = loop.create_future()
        self._proc = await asyncio.create_subprocess_exec(
            *python_argv("agent.workers.spool_worker", "main", str(self._path), str(self._limit)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd="/",
            limit=MAX_LINE,
        )
        self._tasks = [
            asyncio.create_task(self._read(), name="spool-read"),
            asyncio.create_task(self._flush_loop(), name="spool-flush"),
        ]
        self._send({"op": "load"})
        return self._loaded

    def busy_for(self, now: float) -> float:
        return max(0.0, now - self._outstanding[0]) if self._outstanding else 0.0

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "hangwatch_spool_events", "Events on the spool, not yet acknowledged", value=self.depth
        )
        yield CounterMetricFamily(
            "hangwatch_spool_dropped_events_total",
            "Events the full spool dropped",
            value=self.dropped,
        )

    def append(self, event: pb.Event) -> None:
        self._pending_appends.append(event)
        self._appended.set()

    def remove(self, ids: Sequence[str]) -> None:
        if ids:
            # Appends still gathered here go first: an acknowledgement can come back
            # before the next flush, and a remove that overtook its append would delete
            # nothing and leave the event spooled (and replayed) for ever.
            self._flush()
            self._send({"op": "remove", "ids": list(ids)})

    def _send(self, request: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            return
        transport = proc.stdin.transport
        if transport.get_write_buffer_size() > MAX_BUFFERED:
            # The worker stopped reading (stuck on a frozen disk): memory carries on.
            self.failed = "spool worker is not reading its requests"
            return
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        self._outstanding.append(time.monotonic())

    def _flush(self) -> None:
        """Sends the appends gathered since the last flush as one request (one commit)."""
        if self._pending_appends:
            batch, self._pending_appends = self._pending_appends, []
            self._send(
                {
                    "op": "append",
                    "events": [
                        [
                            e.host_seq,
                            e.id,
                            int(droppable(e)),
                            base64.b64encode(e.SerializeToString()).decode(),
                        ]
                        for e in batch
                    ],
                }
            )

    async def _flush_loop(self) -> None:
        # Woken by appends only: a timer every flush interval would cost an idle agent
        # about 1 % of a core in loop wake-ups (bench/bench_overhead.py).
        while True:
            await self._appended.wait()
            # What else is appended within the interval goes into the same commit.
            await asyncio.sleep(self._flush_interval)
            self._appended.clear()
            self._flush()

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                self.failed = "spool worker exited"
                if self._loaded is not None and not self._loaded.done():
                    self._loaded.set_exception(RuntimeError(self.failed))
                return
            if self._outstanding:
                self._outstanding.popleft()
            reply = json.loads(line)
            if "error" in reply:
                self.failed = str(reply["error"])
                log.error("spool: %s", self.failed)
            self.depth = int(reply.get("depth", self.depth))
            self.dropped = int(reply.get("dropped", self.dropped))
            if "events" in reply and self._loaded is not None and not self._loaded.done():
                self._loaded.set_result(
                    [pb.Event.FromString(base64.b64decode(b)) for b in reply["events"]]
                )

    async def close(self, timeout: float = 2.0) -> bool:
        """Flushes and stops the worker; False when it is stuck (it is left behind)."""
        for task in self._tasks:
            task.cancel()
        self._flush()
        proc = self._proc
        if proc is None:
            return True
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
            return True
        except TimeoutError:
            log.warning("spool worker pid %d is stuck (frozen state dir?); leaving it", proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            return False
