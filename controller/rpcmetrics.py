"""What the controller's gRPC server answered: every call by method and status code,
how long unary calls took, and what its streams sent (commands to agents, events to
watchers).

The outermost interceptor, so refusals by the access gate are counted with their
codes too. Streams live for hours: their length says nothing, their messages do.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import grpc
from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hangwatch.grpcmetrics import CallCounts, method_label

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Any  # grpc.RpcMethodHandler, generic only in the stubs
# Unary calls answer from memory or one store transaction: milliseconds to seconds.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def final_code(
    context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None
) -> grpc.StatusCode:
    """The status a call ended with, seen from the handler's side."""
    code = context.code()
    if error is None:
        return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    if isinstance(error, grpc.aio.AbortError) and isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.UNKNOWN


class ServerMetrics(grpc.aio.ServerInterceptor, Collector):
    def __init__(self) -> None:
        self.calls = CallCounts("server")
        self.durations = Histogram(
            "hangwatch_grpc_server_handling_seconds",
            "Time to answer a unary gRPC call, by method",
            ["method"],
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.sent: collections.Counter[str] = collections.Counter()
        self.open: collections.Counter[str] = collections.Counter()

    def collect(self) -> Iterator[Metric]:
        yield from self.calls.collect()
        yield from self.durations.collect()
        for family, counts in (
            (
                CounterMetricFamily(
                    "hangwatch_grpc_server_stream_messages_sent_total",
                    "Messages the controller's streams sent (Commands: to agents), by method",
                    labels=["method"],
                ),
                self.sent,
            ),
            (
                GaugeMetricFamily(
                    "hangwatch_grpc_server_streams_open",
                    "Streaming calls open now, by method",
                    labels=["method"],
                ),
                self.open,
            ),
        ):
            for method, n in sorted(counts.items()):
                family.add_metric([method], n)
            yield family

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = method_label(handler_call_details.method)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, method: str, inner: Any) -> Any:
        observe = self.durations.labels(method).observe

        async def counted(request: Req, context: grpc.aio.ServicerContext[Req, Resp]) -> Resp:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                response: Resp = await inner(request, context)
                return response
            except BaseException as exc:
                error = exc
                raise
            finally:
                observe(time.perf_counter() - started)
                self.calls.count(method, final_code(context, error))

        return counted

    def _stream(self, method: str, inner: Any) -> Any:
        async def counted(
            request: Req, context: grpc.aio.ServicerContext[Req, Resp]
        ) -> AsyncIterator[Resp]:
            self.open[method] += 1
            error: BaseException | None = None
            try:
                async for item in inner(request, context):
                    self.sent[method] += 1
                    yield item
            except BaseException as exc:
                error = exc
                raise
            finally:
                self.open[method] -= 1
                self.calls.count(method, final_code(context, error))

        return counted
