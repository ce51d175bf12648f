"""Turns signals and health transitions into wire events with stable ids.

Ids are ULIDs made here, on the agent, so a retried or replayed event keeps its
identity and the controller can store it once. `host_seq` is time-derived and
strictly increasing (microseconds since the epoch, bumped past the last one
issued), so it needs no persisted counter: a restart whose spool is stuck on a
frozen disk still numbers its events after everything sent before.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from agent.health import Transition
from agent.signals import Kind, Severity, Signal
from hangwatch import pbtime
from hangwatch.ids import new_ulid
from hangwatch.messages import enum_label
from hangwatch.v1 import types_pb2 as pb

MAX_KERNEL_LINES = 60
MAX_LINE = 512
MAX_ATTRIBUTES = 48
MAX_VALUE = 512
MAX_SUMMARY = 1000
MAX_STACK = 32

# Kinds whose events are never dropped when the spool or queue is full.
KEPT_ON_OVERFLOW = frozenset(
    {
        Kind.LOCKUP_SUSPECTED,
        Kind.LOCKUP_CONFIRMED,
        Kind.LOCKUP_RECOVERING,
        Kind.LOCKUP_CLEARED,
    }
)


def droppable(event: pb.Event) -> bool:
    """Lockup transitions and kernel-log events are kept; the rest may be dropped."""
    return event.kind not in KEPT_ON_OVERFLOW and event.evidence.attributes.get("source") != "kmsg"


class EventCounter:
    """Events published, by kind and severity."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, int]] = collections.Counter()

    def count(self, event: pb.Event) -> None:
        self.counts[(event.kind, event.severity)] += 1

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "hangwatch_events_total", "Events the agent emitted", labels=["kind", "severity"]
        )
        for (kind, severity), n in sorted(self.counts.items()):
            events.add_metric([kind, enum_label(pb.Severity, severity).lower()], n)
        yield events


class EventFactory:
    def __init__(self, host_id: str) -> None:
        self.host_id = host_id
        self._last_seq = 0

    def bump_seq(self, at_least: int) -> None:
        """Never issue a sequence number at or below one already used (spool, controller)."""
        self._last_seq = max(self._last_seq, at_least)

    def _next_seq(self) -> int:
        self._last_seq = max(self._last_seq + 1, time.time_ns() // 1000)
        return self._last_seq

    def _event(
        self,
        kind: str,
        severity: Severity,
        mount: str | None,
        at: float,
        summary: str,
        state: int = 0,
    ) -> pb.Event:
        return pb.Event(
            id=new_ulid(at),
            host_id=self.host_id,
            host_seq=self._next_seq(),
            mount=mount or "",
            kind=kind,
            severity=int(severity),  # type: ignore[arg-type]
            occurred_at=pbtime.timestamp(at),
            summary=summary[:MAX_SUMMARY],
            state=state,  # type: ignore[arg-type]
        )

    def from_signal(self, signal: Signal) -> pb.Event:
        event = self._event(signal.kind, signal.severity, signal.mount, signal.at, signal.summary)
        _fill_evidence(event.evidence, [signal])
        return event

    def from_transition(self, t: Transition) -> pb.Event:
        event = self._event(t.kind, t.severity, t.mount, t.at, t.summary, int(t.after))
        _fill_evidence(event.evidence, list(t.evidence))
        event.evidence.attributes["from_state"] = t.before.name
        event.evidence.attributes["to_state"] = t.after.name
        return event


def _fill_evidence(evidence: pb.Evidence, signals: list[Signal]) -> None:
    lines: list[str] = []
    for s in signals:
        lines.extend(s.lines)
        for key, value in s.attributes.items():
            if len(evidence.attributes) >= MAX_ATTRIBUTES:
                break
            evidence.attributes[key[:64]] = str(value)[:MAX_VALUE]
        for task in s.stuck_tasks:
            evidence.stuck_tasks.append(
                pb.StuckTask(
                    pid=task.pid,
                    comm=task.comm[:64],
                    wchan=task.wchan[:128],
                    blocked_for=pbtime.duration(task.blocked_seconds),
                    stack=[f[:128] for f in task.stack[:MAX_STACK]],
                )
            )
    if signals:
        evidence.attributes["source"] = signals[-1].source
        if signals[-1].device:
            evidence.attributes["device"] = signals[-1].device
    # Keep the start of a report (its header) and its end (where it stopped).
    if len(lines) > MAX_KERNEL_LINES:
        half = MAX_KERNEL_LINES // 2
        lines = [*lines[:half], f"... {len(lines) - 2 * half} lines cut ...", *lines[-half:]]
    evidence.kernel_lines.extend(line[:MAX_LINE] for line in lines)
