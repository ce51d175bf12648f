"""What the controller hears about this host: who it is, then how it is doing.

The registration names the host, its boot, its inventory and its mounts; each
heartbeat carries every mount's health with its latest probe, every source's last
tick, and how many events wait to be acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from agent.health import HealthEngine
from agent.host.inventory_watch import InventoryWatch
from agent.link.outbox import Outbox
from agent.selfcheck import SelfCheck
from agent.sources.base import Source
from agent.sources.probe_source import ProbeSource
from agent.workers.probe_report import Outcome
from agent.workers.spool import Spool
from hangwatch import __version__, pbtime
from hangwatch.v1 import agent_service_pb2 as agent_pb

# Longest reason or source detail a heartbeat carries.
MAX_TEXT = 1000


class Heartbeats:
    def __init__(
        self,
        host_id: str,
        boot_id: str,
        *,
        started_at: float,
        inventory: InventoryWatch,
        health: HealthEngine,
        probes: ProbeSource,
        sources: Sequence[Source],
        selfcheck: SelfCheck,
        spool: Spool,
        outbox: Outbox,
        epochs: Callable[[], dict[str, int]],
    ) -> None:
        self._host_id = host_id
        self._boot_id = boot_id
        self._started_at = started_at
        self._inventory = inventory
        self._health = health
        self._probes = probes
        self._sources = sources
        self._selfcheck = selfcheck
        self._spool = spool
        self._outbox = outbox
        # The epochs this host's agent has seen per group: a controller that lost its
        # store raises its own from them instead of fencing hosts for being "stale".
        self._epochs = epochs

    def registration(self) -> agent_pb.RegisterRequest:
        return agent_pb.RegisterRequest(
            host_id=self._host_id,
            boot_id=self._boot_id,
            agent_version=__version__,
            mounts=self._inventory.mounts,
            inventory=self._inventory.inventory,
            agent_started_at=pbtime.timestamp(self._started_at),
        )

    def heartbeat(self) -> agent_pb.HeartbeatRequest:
        request = agent_pb.HeartbeatRequest(
            host_id=self._host_id,
            boot_id=self._boot_id,
            spool_depth=max(self._spool.depth, len(self._outbox)),
            sent_at=pbtime.timestamp(time.time()),
            epochs=self._epochs(),
        )
        now = time.time()
        for mount, (state, since, reason) in self._health.snapshot().items():
            health = request.mounts.add(
                mount=mount,
                state=int(state),
                since=pbtime.timestamp(since),
                reason=reason[:MAX_TEXT],
            )
            last = self._probes.last.get(mount)
            if last is not None:
                if last.stuck_pid is not None and last.outcome is Outcome.STUCK:
                    health.probe_in_flight_for.CopyFrom(
                        pbtime.duration(max(0.0, now - last.started_at))
                    )
                else:
                    health.last_probe_latency.CopyFrom(pbtime.duration(last.latency))
        mono = time.monotonic()
        for source in self._sources:
            request.sources.add(
                source=source.name,
                running=source.name not in self._selfcheck.stalled,
                last_tick=pbtime.timestamp(now - (mono - source.last_tick)),
                detail=source.error[:MAX_TEXT],
            )
        return request
