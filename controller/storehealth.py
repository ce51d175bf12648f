"""The store's condition in the gRPC health status, where probes and load balancers look.

While the disk is full no agent's report can land: the overall status and the
AgentService say NOT_SERVING until writes succeed again. The AdminService stays
SERVING, since reads still work and people need them to see what is going on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from grpc_health.v1 import health, health_pb2

from controller.store.condition import StoreCondition


def publish(
    condition: StoreCondition,
    servicer: health.aio.HealthServicer,
    names: Sequence[str],
    loop: asyncio.AbstractEventLoop,
) -> None:
    """From now on, sets `names` NOT_SERVING while the store is full, SERVING otherwise."""

    async def apply() -> None:
        status = health_pb2.HealthCheckResponse.SERVING
        if condition.full:
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        for name in names:
            await servicer.set(name, status)

    def changed() -> None:
        asyncio.run_coroutine_threadsafe(apply(), loop)

    condition.listen(changed)
    if condition.full:
        changed()
