"""Shared by tests that run a controller and agents as processes: fast settings, a client."""

from __future__ import annotations

import grpc

from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import admin_service_pb2_grpc as admin_grpc

# Fast liveness so tests see STALE/UNREACHABLE in seconds.
FAST_CONTROLLER = {
    "liveness": {
        "heartbeat_interval_seconds": 0.3,
        "stale_after_seconds": 1.0,
        "unreachable_after_seconds": 2.5,
    },
}
FAST_AGENT = {
    "heartbeat": {"interval_seconds": 0.3},
    "reconnect": {"initial_backoff_seconds": 0.1, "max_backoff_seconds": 1.0},
}


class Admin:
    """An in-process AdminService client, for polling faster than spawning hangwatchctl."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self.stub = admin_grpc.AdminServiceStub(self._channel)

    def hosts(self) -> dict[str, admin_pb.Host]:
        try:
            response = self.stub.ListHosts(admin_pb.ListHostsRequest(), timeout=2)
        except grpc.RpcError:
            return {}
        return {h.host_id: h for h in response.hosts}

    def close(self) -> None:
        self._channel.close()
