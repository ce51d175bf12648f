"""Everything a store holds, as backend-neutral rows, for moving an installation from
one store to another (`hangwatch-controller migrate-store`).

The Store interface answers what the controller asks; a copy needs more: expired
maintenance windows, answered commands, requeued dead letters, the times records
were last written. A source yields these rows in a stable order (events by cursor,
audit rows by seq) so that the copy keeps every cursor and the audit chain intact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from controller.audit import AuditRow
from controller.failover.machine import Failover
from controller.store.interface import (
    AdvisoryRow,
    DeadLetterRow,
    GroupRow,
    HostRecord,
    IncidentRow,
    MaintenanceRow,
)
from controller.upgrades.planner import Plan
from hangwatch.v1 import types_pb2 as pb


@dataclass(frozen=True)
class CommandRow:
    host_id: str
    created_at: float
    command: pb.Command
    result: pb.CommandResult | None
    reported_at: float | None


@dataclass(frozen=True)
class FenceRow:
    failover_id: str
    ok: bool
    detail: str
    at: float


@dataclass(frozen=True)
class AlertRow:
    sink: str
    host_id: str
    mount: str
    dedup_key: str


class Source(Protocol):
    """What a store can hand over, kind by kind."""

    def hosts(self) -> Iterator[HostRecord]: ...

    def events(self) -> Iterator[pb.Event]:
        """Every event with its cursor and received_at, in cursor order."""

    def group_rows(self) -> Iterator[GroupRow]: ...

    def failovers(self) -> Iterator[tuple[Failover, float]]:
        """Each failover and when it was last written."""

    def commands(self) -> Iterator[CommandRow]: ...

    def fence_results(self) -> Iterator[FenceRow]: ...

    def audit(self) -> Iterator[AuditRow]:
        """Every audit row, in seq order."""

    def maintenance(self) -> Iterator[MaintenanceRow]: ...

    def settings(self) -> Iterator[tuple[str, str]]: ...

    def incidents(self) -> Iterator[IncidentRow]: ...

    def webhook_cursors(self) -> Iterator[tuple[str, int]]: ...

    def dead_letters(self) -> Iterator[tuple[DeadLetterRow, float | None]]:
        """Each dead letter and when it was requeued (None: it is not)."""

    def last_dead_letter_id(self) -> int:
        """The highest dead letter id ever handed out (deleted letters included)."""

    def alerts(self) -> Iterator[AlertRow]: ...

    def advisories(self) -> Iterator[AdvisoryRow]: ...

    def plans(self) -> Iterator[tuple[Plan, float]]:
        """Each plan and when it was last written."""
