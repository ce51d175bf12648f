"""What the controller keeps, as an interface with one job per method.

SQLite is the embedded default (`controller.sqlite_store`); a set of controllers
for high availability plugs in an etcd store behind the same interface. Nothing
above this layer knows which one it talks to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb


@dataclass(frozen=True)
class HostRecord:
    host_id: str
    boot_id: str
    agent_version: str
    registered_at: float
    last_heartbeat_at: float | None
    registration: agent_pb.RegisterRequest
    last_heartbeat: agent_pb.HeartbeatRequest | None


class Store(Protocol):
    def close(self) -> None: ...

    # Hosts.
    def register_host(self, request: agent_pb.RegisterRequest, now: float) -> None:
        """Creates or refreshes a host's record; the host keeps its history."""

    def record_heartbeat(self, request: agent_pb.HeartbeatRequest, now: float) -> bool:
        """Stores the latest health summary; False when the host is unknown."""

    def get_host(self, host_id: str) -> HostRecord | None: ...

    def list_hosts(self) -> list[HostRecord]: ...

    # Events.
    def add_events(self, events: Sequence[pb.Event], now: float) -> None:
        """Stores each event id once, durably, before returning."""

    def list_events(
        self,
        flt: admin_pb.EventFilter,
        since_cursor: int,
        limit: int,
        newest_first: bool = False,
    ) -> list[pb.Event]: ...

    def last_host_seq(self, host_id: str) -> int: ...

    def last_cursor(self) -> int: ...
