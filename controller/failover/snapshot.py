"""The cluster as the failover logic sees it, built from the store in one place.

The coordinator's pass, the admin API and the upgrade driver all read the same
immutable `ClusterState`, so a person is shown exactly what the engine decides on.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from controller.config import ControllerConfig
from controller.failover.liveness import liveness
from controller.failover.machine import Failover
from controller.failover.model import (
    ClusterState,
    GroupView,
    HostView,
    Policy,
)
from controller.store.dbthread import DbThread
from controller.store.interface import POLICY_FAILOVERS, Store
from hangwatch import pbtime
from hangwatch.messages import enum_label
from hangwatch.v1 import types_pb2 as pb

# Failovers older than this no longer count for the group-percent window.
RECENT_LIMIT = 200

# What the advisories (or the open advisory drafts) say of a host: their ids.
AdvisoryLookup = Callable[[pb.Inventory, list[pb.Mount]], tuple[str, ...]]


def _no_advisories(_: pb.Inventory, __: list[pb.Mount]) -> tuple[str, ...]:
    return ()


def policy(config: ControllerConfig) -> Policy:
    """The automatic-approval limits the config sets."""
    fo = config.failover
    return Policy(
        anti_flap_seconds=fo.anti_flap_seconds,
        max_concurrent=fo.max_concurrent,
        max_group_percent=fo.max_group_percent,
        window_seconds=fo.window_seconds,
    )


class Snapshots:
    def __init__(
        self,
        store: Store,
        db: DbThread,
        config: ControllerConfig,
        advisories: AdvisoryLookup = _no_advisories,
        suspicions: AdvisoryLookup = _no_advisories,
        *,
        started_at: float | None = None,
    ) -> None:
        """`started_at`: when this controller started (now by default); heartbeats stored
        before it say nothing of a host's liveness now."""
        self._store = store
        self._db = db
        self._config = config
        self._advisories = advisories
        self._suspicions = suspicions
        self.policy = policy(config)
        self.started_at = time.time() if started_at is None else started_at
        self.settling_until = self.started_at + config.liveness.reconnect_grace_seconds

    async def cluster(self) -> ClusterState:
        """The cluster now (from any task)."""
        state, _ = await self._db.run(self.take, time.time())
        return state

    def take(self, now: float) -> tuple[ClusterState, list[Failover]]:
        """The cluster as the engine sees it, and the open failovers (store thread)."""
        store, live = self._store, self._config.liveness
        windows = store.list_maintenance(now)
        hosts_in_maintenance = {w.target for w in windows if w.scope == "host"}
        groups_in_maintenance = {w.target for w in windows if w.scope == "group"}
        hosts = {}
        for record in store.list_hosts():
            hb = record.last_heartbeat
            mounts = hb.mounts if hb else []
            heard = record.last_heartbeat_at
            age = None if heard is None else now - heard
            hosts[record.host_id] = HostView(
                host_id=record.host_id,
                liveness=enum_label(
                    pb.Liveness,
                    liveness(
                        # Silence during the controller's own outage is not the host's.
                        None if heard is None else max(heard, self.started_at),
                        now,
                        live.stale_after_seconds,
                        live.unreachable_after_seconds,
                    ),
                ),
                heartbeat_age=age,
                mounts={m.mount: enum_label(pb.HealthState, m.state) for m in mounts},
                probe_latency={m.mount: pbtime.seconds(m.last_probe_latency) for m in mounts},
                maintenance=record.host_id in hosts_in_maintenance,
                advisories=self._advisories(
                    record.registration.inventory, list(record.registration.mounts)
                ),
                needs_clear=bool(record.needs_clear),
                kernel=record.registration.inventory.kernel_release,
                suspected=self._suspicions(
                    record.registration.inventory, list(record.registration.mounts)
                ),
                heard_since_start=heard is not None and heard >= self.started_at,
                epochs=dict(hb.epochs) if hb else {},
            )
        rows = store.groups()
        groups = tuple(
            GroupView(
                name=g.name,
                members=tuple(g.members),
                mounts=tuple(g.mounts),
                mode=g.mode,
                primary=rows[g.name].primary,
                epoch=rows[g.name].epoch,
                auto_blocked_until=rows[g.name].auto_blocked_until,
                maintenance=g.name in groups_in_maintenance,
                frozen_primary=g.frozen_primary,
            )
            for g in self._config.groups
            if g.name in rows
        )
        recent = store.list_failovers(limit=POLICY_FAILOVERS)
        state = ClusterState(
            now=now,
            groups=groups,
            hosts=hosts,
            failovers=tuple(f.view(now) for f in recent),
            automation=store.get_setting("automation", "on") == "on",
            cluster_maintenance=any(w.scope == "cluster" for w in windows),
            policy=self.policy,
            settling_until=self.settling_until,
        )
        return state, [f for f in recent if f.state.active]
