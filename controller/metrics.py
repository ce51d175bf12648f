"""The controller's Prometheus view: ingest, host heartbeats, RPCs, webhooks, failovers.

Most series are read at scrape time from state the controller keeps anyway (the
webhook workers' counters, the store); only ingest counts and RPC latencies are
counted here, since nothing else keeps them. Store reads go through the store's
own thread, asked from the scrape thread via the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import grpc
from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.notify.eventbus import CursorBus
from controller.notify.payloads import SEVERITY
from controller.notify.webhooks import Dispatcher
from controller.store.dbthread import DbThread
from controller.store.interface import Store
from hangwatch.v1 import types_pb2 as pb

T = TypeVar("T")
Req = TypeVar("Req")
Resp = TypeVar("Resp")
# A scrape gives up on the store after this long (the store thread is busy or stuck).
STORE_TIMEOUT = 5.0


class IngestCounter:
    """Events stored, by kind and severity (fed with each batch ingest stored)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def count(self, events: Sequence[pb.Event]) -> None:
        self.counts.update((e.kind, SEVERITY.get(e.severity, "unspecified")) for e in events)


class RpcTimer(grpc.aio.ServerInterceptor):
    """Times unary RPCs by method (streams live for hours: their length says nothing)."""

    def __init__(self) -> None:
        self.histogram = Histogram(
            "hangwatch_rpc_duration_seconds",
            "Time to answer a unary gRPC call, by method",
            ["method"],
            registry=None,
        )

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Req, Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        # On grpc.aio the behaviour is a coroutine function (the stubs know only sync ones).
        inner: Any = handler.unary_unary
        # "/hangwatch.v1.AdminService/ListHosts" -> "AdminService/ListHosts"
        observe = self.histogram.labels(handler_call_details.method.rsplit(".", 1)[-1]).observe

        async def timed(request: Req, context: grpc.aio.ServicerContext[Req, Resp]) -> Resp:
            started = time.perf_counter()
            try:
                response: Resp = await inner(request, context)
                return response
            finally:
                observe(time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class ControllerCollector(Collector):
    def __init__(
        self,
        store: Store,
        db: DbThread,
        bus: CursorBus,
        webhooks: Dispatcher,
        ingest: IngestCounter,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._store = store
        self._db = db
        self._bus = bus
        self._webhooks = webhooks
        self._ingest = ingest
        self._loop = loop

    def _ask_store(self, fn: Callable[[], T]) -> T:
        """Runs a store read on the store's thread from the scrape thread."""
        future = asyncio.run_coroutine_threadsafe(self._db.run(fn), self._loop)
        return future.result(STORE_TIMEOUT)

    def collect(self) -> Iterator[Metric]:
        ingested = CounterMetricFamily(
            "hangwatch_events_ingested_total",
            "Events stored by the controller (each id once), by kind and severity",
            labels=["kind", "severity"],
        )
        for (kind, severity), n in list(self._ingest.counts.items()):
            ingested.add_metric([kind, severity], n)
        yield ingested

        now = time.time()
        age = GaugeMetricFamily(
            "hangwatch_host_heartbeat_age_seconds",
            "Seconds since each monitored host's last heartbeat",
            labels=["host"],
        )
        for host in self._ask_store(self._store.list_hosts):
            if host.last_heartbeat_at is not None:
                age.add_metric([host.host_id], max(0.0, now - host.last_heartbeat_at))
        yield age

        failovers = GaugeMetricFamily(
            "hangwatch_failovers",
            "Failovers in the store, by group and current state",
            labels=["group", "state"],
        )
        for (group, state), n in sorted(self._ask_store(self._store.failover_counts).items()):
            failovers.add_metric([group, state], n)
        yield failovers

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

        yield from self._webhook_metrics()

    def _webhook_metrics(self) -> Iterator[Metric]:
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
                "Events that became dead letters",
                lambda w: w.dead_letters,
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
