"""Prometheus metrics shared by both programs: the [metrics] section and the endpoint.

Each program exports its own view through custom collectors that read the state it
keeps anyway, on a registry of its own (no default process-wide globals), plus the
usual `process_*` series (CPU, memory, file descriptors: the daemon's own budget).
Names follow the usual rules: `hangwatch_` prefix, base units, `_total` counters, and
no host or cluster labels (the scrape adds those). docs/metrics.md lists every one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hangwatch import __version__
from hangwatch.addresses import parse_address
from hangwatch.config import setting
from hangwatch.settings import address_check

log = logging.getLogger(__name__)

_DOC = "HOST:PORT serving Prometheus metrics at /metrics; empty disables them"
_LISTEN = address_check(allow_port_zero=True, optional=True)


@dataclass(frozen=True)
class MetricsSettings:
    listen: str = setting(
        "127.0.0.1:9448", _DOC, address_check(allow_port_zero=True, optional=True)
    )


@dataclass(frozen=True)
class AgentMetricsSettings(MetricsSettings):
    listen: str = setting("127.0.0.1:9449", _DOC, _LISTEN)


class BuildInfo(Collector):
    def __init__(self, program: str) -> None:
        self._program = program

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "hangwatch_build_info",
            "Always 1; labels say which hangwatch program and version this is",
            labels=["program", "version"],
        )
        info.add_metric([self._program, __version__], 1.0)
        yield info


class MetricsEndpoint:
    """The /metrics HTTP server, on a thread of its own so a scrape never waits on the loop."""

    def __init__(self, program: str, collectors: Iterable[Collector]) -> None:
        # No `_created` series beside counters and histograms: a sample per series per
        # scrape that no dashboard reads. (A process-wide switch; each daemon is one.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=False)
        process = ProcessCollector(registry=None)
        for collector in (BuildInfo(program), process, *collectors):
            self.registry.register(collector)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, listen: str) -> int | None:
        """Serves on `listen` (empty: not at all); returns the port.

        A port already taken is logged, not fatal: detection matters more than its metrics.
        """
        if not listen:
            return None
        address = parse_address(listen, allow_port_zero=True)
        try:
            self._server, self._thread = start_http_server(
                address.port, address.host, registry=self.registry
            )
        except OSError as exc:
            log.error("metrics NOT served on %s: %s", listen, exc.strerror or exc)
            return None
        port = int(self._server.server_port)
        log.info("metrics on http://%s:%d/metrics", address.host, port)
        return port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
