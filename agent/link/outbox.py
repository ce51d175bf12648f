"""Events waiting for the controller's acknowledgement, in host_seq order, bounded.

The outbox lives in memory so that sending never waits on the disk (docs/design.md#1-no-waiting);
the spool keeps the same events durable beside it. When full, the oldest
droppable event makes room; lockup transitions and kernel-log events are never
dropped (they are few, and they are the point), and every drop is counted.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from hangwatch.v1 import types_pb2 as pb


class Outbox:
    def __init__(self, limit: int, droppable: Callable[[pb.Event], bool]) -> None:
        self.limit = limit
        self._droppable = droppable
        self._events: dict[str, pb.Event] = {}
        self._changed = asyncio.Event()
        self.dropped: collections.Counter[str] = collections.Counter()

    def __len__(self) -> int:
        return len(self._events)

    def put(self, event: pb.Event) -> pb.Event | None:
        """Queues `event`; returns the event dropped to make room, if one was."""
        dropped = None
        if len(self._events) >= self.limit:
            victim = next((e for e in self._events.values() if self._droppable(e)), None)
            if victim is None and self._droppable(event):
                victim = event
            if victim is not None:
                self.dropped[victim.kind] += 1
                dropped = victim
                if victim is event:
                    return dropped
                del self._events[victim.id]
        self._events[event.id] = event
        self._changed.set()
        return dropped

    def merge(self, events: Iterable[pb.Event]) -> None:
        """Adds replayed events (from the spool) in their host_seq place."""
        merged = {e.id: e for e in events if e.id not in self._events}
        if not merged:
            return
        merged.update(self._events)
        self._events = dict(sorted(merged.items(), key=lambda kv: kv[1].host_seq))
        self._changed.set()

    def batch(self, size: int, max_bytes: int) -> list[pb.Event]:
        """The oldest events, at most `size` of them and `max_bytes` serialized (but at
        least one): lockup evidence makes some events tens of KiB."""
        out: list[pb.Event] = []
        used = 0
        for event in self._events.values():
            used += event.ByteSize()
            if len(out) == size or (out and used > max_bytes):
                break
            out.append(event)
        return out

    def ack(self, ids: Iterable[str]) -> int:
        n = 0
        for event_id in ids:
            if self._events.pop(event_id, None) is not None:
                n += 1
        return n

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "hangwatch_outbox_events", "Events queued in memory to send", value=len(self)
        )
        dropped = CounterMetricFamily(
            "hangwatch_outbox_dropped_events_total",
            "Events the full memory queue dropped, by kind",
            labels=["kind"],
        )
        for kind, n in sorted(self.dropped.items()):
            dropped.add_metric([kind], n)
        yield dropped

    async def wait(self, timeout: float) -> None:
        """Returns when something was queued since the last wait, or after `timeout`."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return
        self._changed.clear()
