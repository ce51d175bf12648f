"""A host's liveness from the age of its last heartbeat (pure)."""

from __future__ import annotations

from hangwatch.v1 import types_pb2 as pb


def liveness(
    last_heartbeat_at: float | None,
    now: float,
    stale_after: float,
    unreachable_after: float,
) -> pb.Liveness.ValueType:
    if last_heartbeat_at is None:
        return pb.LIVENESS_UNREACHABLE
    age = now - last_heartbeat_at
    if age <= stale_after:
        return pb.LIVENESS_HEALTHY
    if age <= unreachable_after:
        return pb.LIVENESS_STALE
    return pb.LIVENESS_UNREACHABLE
