"""The controller's Prometheus view: ingest, hosts and their mounts, groups and
failovers, agents connected, webhooks, the store.

Most series are read at scrape time from state the controller keeps anyway: the
cluster as the failover logic sees it (`Snapshots.take`, the one place hosts'
liveness and mount health are read, whichever layer keeps heartbeats), the store's
durable counts and the webhook workers' counters. Only what nothing else keeps is
counted here: events stored and how late lockups arrived. Store reads go through
the store's own thread, asked from the scrape thread via the event loop, in one hop.

Series about hosts carry a `host` label although the scrape adds host labels: here
the host is the subject (one controller reports on every host), not the target.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.failover.commandhub import CommandHub
from controller.failover.machine import Failover
from controller.failover.model import ClusterState, FailoverState
from controller.failover.snapshot import Snapshots
from controller.notify.eventbus import CursorBus
from controller.notify.payloads import SEVERITY
from controller.notify.webhooks import Dispatcher
from controller.store.dbthread import DbThread
from controller.store.interface import Store
from hangwatch import pbtime
from hangwatch.v1 import types_pb2 as pb

T = TypeVar("T")
# A scrape gives up on the store after this long (the store thread is busy or stuck).
STORE_TIMEOUT = 5.0
CONFIRMED = "LOCKUP_CONFIRMED"
# From an agent's confirmation to its event stored here: sub-second on a working
# network, minutes when the agent replays its spool after an outage.
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
LIVENESS = ("HEALTHY", "STALE", "UNREACHABLE")
HEALTH = ("OK", "SUSPECT", "LOCKED", "RECOVERING")


class IngestMetrics(Collector):
    """Events stored, by kind and severity, and how long confirmed lockups took to
    arrive (fed with each batch ingest stored, on the event loop)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.delivery = Histogram(
            "hangwatch_lockup_delivery_seconds",
            "From LOCKUP_CONFIRMED on the agent (its clock) to the event stored by the "
            "controller (this clock)",
            buckets=DELIVERY_BUCKETS,
            registry=None,
        )

    def count(self, events: Sequence[pb.Event]) -> None:
        self.counts.update((e.kind, SEVERITY.get(e.severity, "unspecified")) for e in events)
        for event in events:
            if event.kind == CONFIRMED:
                late = pbtime.seconds(event.received_at) - pbtime.seconds(event.occurred_at)
                self.delivery.observe(max(0.0, late))

    def collect(self) -> Iterator[Metric]:
        ingested = CounterMetricFamily(
            "hangwatch_events_ingested_total",
            "Events stored by the controller (each id once), by kind and severity",
            labels=["kind", "severity"],
        )
        for (kind, severity), n in sorted(self.counts.items()):
            ingested.add_metric([kind, severity], n)
        yield ingested
        yield from self.delivery.collect()


@dataclass(frozen=True)
class StoreView:
    """What one scrape reads from the store, in one hop to its thread."""

    state: ClusterState
    open_failovers: list[Failover]
    failover_counts: dict[tuple[str, str], int]
    dead_letters: dict[str, int]


class ControllerCollector(Collector):
    def __init__(
        self,
        store: Store,
        db: DbThread,
        snapshots: Snapshots,
        hub: CommandHub,
        bus: CursorBus,
        webhooks: Dispatcher,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._store = store
        self._db = db
        self._snapshots = snapshots
        self._hub = hub
        self._bus = bus
        self._webhooks = webhooks
        self._loop = loop

    def _ask_store(self, fn: Callable[[], T]) -> T:
        """Runs a store read on the store's thread from the scrape thread."""
        future = asyncio.run_coroutine_threadsafe(self._db.run(fn), self._loop)
        return future.result(STORE_TIMEOUT)

    def _read(self) -> StoreView:
        state, open_failovers = self._snapshots.take(time.time())
        return StoreView(
            state,
            open_failovers,
            self._store.failover_counts(),
            self._store.dead_letter_counts(),
        )

    def collect(self) -> Iterator[Metric]:
        view = self._ask_store(self._read)
        yield from host_metrics(view.state)
        yield GaugeMetricFamily(
            "hangwatch_agents_connected",
            "Hosts whose agent holds a Commands stream open to this controller",
            value=len(self._hub.connected()),
        )
        yield from group_metrics(view)
        condition = self._store.condition
        yield GaugeMetricFamily(
            "hangwatch_store_full",
            "1 while the store refuses writes for lack of disk space, else 0",
            value=int(condition.full),
        )
        yield CounterMetricFamily(
            "hangwatch_store_writes_refused_total",
            "Store writes refused for lack of disk space (answered RESOURCE_EXHAUSTED)",
            value=condition.refused_writes,
        )
        yield from self._webhook_metrics(view.dead_letters)

    def _webhook_metrics(self, dead_letters: dict[str, int]) -> Iterator[Metric]:
        workers = list(self._webhooks.workers.values())
        families: list[tuple[Any, str, str, Callable[[Any], float]]] = [
            (CounterMetricFamily, "deliveries_total", "Events delivered", lambda w: w.delivered),
            (
                CounterMetricFamily,
                "delivery_failures_total",
                "Failed delivery attempts (each retry counts)",
                lambda w: w.failures,
            ),
            (
                CounterMetricFamily,
                "dead_letters_total",
                "Events that became dead letters since this controller started",
                lambda w: w.dead_letters,
            ),
            (
                GaugeMetricFamily,
                "dead_letters_stored",
                "Dead letters in the store (kept across restarts until resent and delivered)",
                lambda w: dead_letters.get(w.name, 0),
            ),
            (GaugeMetricFamily, "queue_events", "Events queued in memory", lambda w: w.queued),
            (
                GaugeMetricFamily,
                "lag_events",
                "Stored events the sink has not yet handed off",
                lambda w: max(0, self._bus.cursor - w.cursor),
            ),
        ]
        for family, suffix, doc, read in families:
            metric = family(f"hangwatch_webhook_{suffix}", f"{doc}, by sink", labels=["sink"])
            for worker in workers:
                metric.add_metric([worker.name], read(worker))
            yield metric


def host_metrics(state: ClusterState) -> Iterator[Metric]:
    """Each host's liveness and mount health as its last heartbeat told (pure)."""
    age = GaugeMetricFamily(
        "hangwatch_host_heartbeat_age_seconds",
        "Seconds since each monitored host's last heartbeat",
        labels=["host"],
    )
    liveness = GaugeMetricFamily(
        "hangwatch_host_liveness",
        "1 for each host's liveness (HEALTHY, STALE, UNREACHABLE), 0 for the others",
        labels=["host", "liveness"],
    )
    health = GaugeMetricFamily(
        "hangwatch_host_mount_health",
        "1 for each host's mount's health state as last reported, 0 for the others",
        labels=["host", "mount", "state"],
    )
    needs_clear = GaugeMetricFamily(
        "hangwatch_host_needs_clear",
        "1 while a host is no failover target until cleared (hangwatchctl host clear)",
        labels=["host"],
    )
    for host in sorted(state.hosts.values(), key=lambda h: h.host_id):
        if host.heartbeat_age is not None:
            age.add_metric([host.host_id], max(0.0, host.heartbeat_age))
        for name in LIVENESS:
            liveness.add_metric([host.host_id, name], float(host.liveness == name))
        for mount, current in sorted(host.mounts.items()):
            for name in HEALTH:
                health.add_metric([host.host_id, mount, name], float(current == name))
        needs_clear.add_metric([host.host_id], float(host.needs_clear))
    # A group member whose agent never registered (or was forgotten) is down too.
    for host_id in sorted({m for g in state.groups for m in g.members} - set(state.hosts)):
        for name in LIVENESS:
            liveness.add_metric([host_id, name], float(name == "UNREACHABLE"))
    yield from (age, liveness, health, needs_clear)


def group_metrics(view: StoreView) -> Iterator[Metric]:
    """Automation, maintenance, each group's primary and anti-flap block, failovers (pure)."""
    state = view.state
    yield GaugeMetricFamily(
        "hangwatch_automation_enabled",
        "1 while automatic failover is on (hangwatchctl automation), else 0",
        value=float(state.automation),
    )
    maintenance = GaugeMetricFamily(
        "hangwatch_maintenance",
        "1 while a maintenance window holds the host, group or cluster, else 0",
        labels=["scope", "target"],
    )
    maintenance.add_metric(["cluster", ""], float(state.cluster_maintenance))
    for group in state.groups:
        maintenance.add_metric(["group", group.name], float(group.maintenance))
    for host in sorted(state.hosts):
        maintenance.add_metric(["host", host], float(state.hosts[host].maintenance))
    yield maintenance
    info = GaugeMetricFamily(
        "hangwatch_group_info",
        "Always 1; labels say each group's failover mode and current primary",
        labels=["group", "mode", "primary"],
    )
    blocked = GaugeMetricFamily(
        "hangwatch_group_anti_flap_block_seconds",
        "Seconds until a group's anti-flap block on automatic failover ends (0: none)",
        labels=["group"],
    )
    for group in state.groups:
        info.add_metric([group.name, group.mode, group.primary], 1.0)
        until = group.auto_blocked_until
        blocked.add_metric([group.name], max(0.0, (until or 0.0) - state.now))
    yield from (info, blocked)

    counts = GaugeMetricFamily(
        "hangwatch_failovers",
        "Failovers in the store, by group and current state",
        labels=["group", "state"],
    )
    # Every state of every group, zeros included: a first FAILED is then a change.
    groups = {g.name for g in state.groups} | {g for g, _ in view.failover_counts}
    for name in sorted(groups):
        for fo_state in FailoverState:
            n = view.failover_counts.get((name, fo_state.value), 0)
            counts.add_metric([name, fo_state.value], n)
    yield counts
    age = GaugeMetricFamily(
        "hangwatch_failover_open_age_seconds",
        "Seconds since each open failover was proposed, by group and current state",
        labels=["group", "state"],
    )
    # One open failover per group; should there be more, the oldest speaks for them.
    oldest: dict[tuple[str, str], float] = {}
    for f in view.open_failovers:
        key = (f.group, f.state.value)
        oldest[key] = min(oldest.get(key, f.created_at), f.created_at)
    for (name, label), created_at in sorted(oldest.items()):
        age.add_metric([name, label], max(0.0, state.now - created_at))
    yield age
