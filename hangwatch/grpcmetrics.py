"""gRPC calls by method and status code, for either side of a call.

The controller counts what it answered, the agent what it asked; both name a method
`Service/Method` and a code by its name (`OK`, `UNAVAILABLE`), as grpc-prometheus does.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator

import grpc
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


def method_label(full_method: str) -> str:
    """ "/hangwatch.v1.AdminService/ListHosts" -> "AdminService/ListHosts"."""
    return full_method.rsplit(".", 1)[-1]


class CallCounts(Collector):
    """Finished calls by method and code; `side` is "server" or "client"."""

    def __init__(self, side: str) -> None:
        self.name = f"hangwatch_grpc_{side}_handled_total"
        self._doc = (
            "gRPC calls this program answered, by method and status code"
            if side == "server"
            else "gRPC calls this program made, by method and status code"
        )
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._lock = threading.Lock()

    def count(self, method: str, code: grpc.StatusCode) -> None:
        with self._lock:
            self._counts[(method, code.name)] += 1

    def get(self, method: str, code: grpc.StatusCode) -> int:
        with self._lock:
            return self._counts[(method, code.name)]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self._doc, labels=["method", "code"])
        with self._lock:
            counts = sorted(self._counts.items())
        for (method, code), n in counts:
            family.add_metric([method, code], n)
        yield family
