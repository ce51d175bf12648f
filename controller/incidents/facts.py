"""Everything recorded about one incident, read from the store in one place, for the
API's report and the status-page sink alike (store thread)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controller.config import ControllerConfig
from controller.failover.machine import Failover
from controller.failover.model import FailoverState
from controller.incidents import report, statuspage, window
from controller.store.interface import IncidentRow, Store
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb

EVENTS_PER_HOST = 2000
AUDIT_SCAN = 10_000
FAILOVERS_SCAN = 200
INCIDENTS_SCAN = 1000

# Advisory ids a kernel and filesystem match (AdvisoryBook.lookup's question).
AdvisoryLookup = Callable[[pb.Inventory, list[pb.Mount]], tuple[str, ...]]


@dataclass(frozen=True)
class Facts:
    incident: IncidentRow
    failovers: list[Failover]
    entries: list[report.Entry]
    advisories: tuple[str, ...]
    # Earlier incidents whose host matched one of the same advisories.
    related: list[IncidentRow]
    stage: str


def advisories_of(incident: IncidentRow, lookup: AdvisoryLookup) -> tuple[str, ...]:
    """The advisories its host's kernel and filesystem match now (one added after the
    incident links it too: that is how a bug found later ties its outages together)."""
    if not incident.kernel:
        return ()
    inventory = pb.Inventory(kernel_release=incident.kernel)
    return lookup(inventory, [pb.Mount(path=incident.mount, fs_type=incident.fs_type)])


def gather(
    store: Store,
    config: ControllerConfig,
    lookup: AdvisoryLookup,
    incident: IncidentRow,
    now: float,
) -> Facts:
    group = config.group(incident.group)
    mounts = list(group.mounts) if group else [incident.mount]
    failovers = window.failovers_of(
        incident, store.list_failovers(incident.group, limit=FAILOVERS_SCAN), now
    )
    hosts = window.hosts_of(incident, failovers)
    events: list[pb.Event] = []
    for host in sorted(hosts):
        events += store.list_events(
            admin_pb.EventFilter(host_id=host), 0, EVENTS_PER_HOST, newest_first=True
        )
    own = window.events_of(incident, events, hosts, mounts, now)
    entries = report.timeline(incident, own, failovers, store.list_audit(0, AUDIT_SCAN))
    advisories = advisories_of(incident, lookup)
    related = [
        other
        for other in store.list_incidents(limit=INCIDENTS_SCAN)
        if other.started_at < incident.started_at
        and set(advisories) & set(advisories_of(other, lookup))
    ]
    return Facts(
        incident,
        failovers,
        entries,
        advisories,
        sorted(related, key=lambda r: r.started_at),
        window.stage(incident, failovers),
    )


def story(facts: Facts) -> statuspage.Story:
    """What the customer page tells of these facts."""
    approved = [s.at for f in facts.failovers for s in f.steps if s.state is FailoverState.APPROVED]
    moved = any(f.state is FailoverState.COMPLETED for f in facts.failovers)
    return statuspage.Story(
        incident=facts.incident,
        stage=facts.stage,
        identified_at=min(approved) if approved else None,
        moved=moved,
        known_issue=bool(facts.advisories),
        earlier=tuple(r.started_at for r in facts.related),
    )


def audience(config: ControllerConfig, group_name: str) -> statuspage.Audience:
    group = config.group(group_name)
    if group is None:
        return statuspage.Audience(group_name)
    return statuspage.Audience(group.display_name or group.name, tuple(group.services))
