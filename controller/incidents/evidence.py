"""The confirmed lockups whose evidence belongs to an incident (store thread).

An incident is one group's outage; every LOCKUP_CONFIRMED of its members from ten
minutes before it started to its end carries evidence a vendor may want, the
standbys' included (the same bug striking twice is the point).
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.store.interface import IncidentRow, Store
from hangwatch import pbtime
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb

# A lockup and its evidence is up to ~130 KiB: this many stay well under the 4 MiB
# message limit. The newest are kept.
MAX_LOCKUPS = 16
LOOKBACK_SECONDS = 600.0
# Lockups looked at per member, newest first.
SCAN_PER_HOST = 200
LOCKUP_CONFIRMED = "LOCKUP_CONFIRMED"


def lockup_events(store: Store, incident: IncidentRow, members: Sequence[str]) -> list[pb.Event]:
    """The incident's confirmed lockups, oldest first."""
    end = incident.ended_at if incident.ended_at is not None else float("inf")
    found = []
    for host in members:
        flt = admin_pb.EventFilter(host_id=host, kind=LOCKUP_CONFIRMED)
        for event in store.list_events(flt, 0, SCAN_PER_HOST, newest_first=True):
            at = pbtime.seconds(event.occurred_at)
            if incident.started_at - LOOKBACK_SECONDS <= at <= end:
                found.append(event)
    found.sort(key=lambda e: (pbtime.seconds(e.occurred_at), e.id))
    return found[-MAX_LOCKUPS:]
