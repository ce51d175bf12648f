"""The agent's Prometheus view: what the detector itself sees and does.

Everything is read at scrape time from state the agent keeps anyway (probe
histograms, health, spool and kmsg counters): nothing is counted twice. Host-wide
resource data (pressure, disk stats) is node_exporter's to export, not ours.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from agent.health import State
from agent.sources.kmsg_source import KmsgSource
from hangwatch.v1 import types_pb2 as pb

if TYPE_CHECKING:
    from agent.runner import Agent


def _severity(value: int) -> str:
    return pb.Severity.Name(pb.Severity.ValueType(value)).removeprefix("SEVERITY_").lower()


def _status(value: int) -> str:
    return (
        pb.CommandStatus.Name(pb.CommandStatus.ValueType(value))
        .removeprefix("COMMAND_STATUS_")
        .lower()
    )


class AgentCollector(Collector):
    # Reads the loop's state from the scrape thread: every container is copied first.
    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def collect(self) -> Iterator[Metric]:
        a = self._agent
        yield from a.probe_latency.collect()

        health = GaugeMetricFamily(
            "hangwatch_mount_health",
            "1 for each mount's current health state, 0 for the others",
            labels=["mount", "state"],
        )
        for mount, (current, _, _) in sorted(a.health.snapshot().items()):
            for state in State:
                health.add_metric([mount, state.name], float(state is current))
        yield health

        events = CounterMetricFamily(
            "hangwatch_events_total", "Events the agent emitted", labels=["kind", "severity"]
        )
        for (kind, severity), n in sorted(a.published.items()):
            events.add_metric([kind, _severity(severity)], n)
        yield events

        yield GaugeMetricFamily(
            "hangwatch_spool_events",
            "Events on the spool, not yet acknowledged",
            value=a.spool.depth,
        )
        yield GaugeMetricFamily(
            "hangwatch_outbox_events", "Events queued in memory to send", value=len(a.outbox)
        )
        yield CounterMetricFamily(
            "hangwatch_spool_dropped_events_total",
            "Events the full spool dropped",
            value=a.spool.dropped,
        )
        dropped = CounterMetricFamily(
            "hangwatch_outbox_dropped_events_total",
            "Events the full memory queue dropped, by kind",
            labels=["kind"],
        )
        for kind, n in sorted(a.outbox.dropped.items()):
            dropped.add_metric([kind], n)
        yield dropped

        yield from self._kmsg(a)

        mono = time.monotonic()
        ticks = GaugeMetricFamily(
            "hangwatch_source_last_tick_age_seconds",
            "Seconds since each signal source last ran",
            labels=["source"],
        )
        for source in list(a.sources):
            ticks.add_metric([source.name], max(0.0, mono - source.last_tick))
        yield ticks

        results = GaugeMetricFamily(
            "hangwatch_command_results",
            "Results in the agent's command record (its latest commands), by status",
            labels=["status"],
        )
        book = a.command_handler.book
        counts = collections.Counter(_status(r.status) for r in list(book.results.values()))
        for status, n in sorted(counts.items()):
            results.add_metric([status], n)
        yield results

    def _kmsg(self, a: Agent) -> Iterator[Metric]:
        kmsg = next((s for s in a.sources if isinstance(s, KmsgSource)), None)
        if kmsg is None:
            return
        for name, doc, value in (
            ("records", "Kernel log records read", kmsg.records),
            ("records_lost", "Kernel log records overwritten before they were read", kmsg.lost),
            ("records_malformed", "Kernel log records that did not parse", kmsg.malformed),
        ):
            yield CounterMetricFamily(f"hangwatch_kmsg_{name}_total", doc, value=value)
