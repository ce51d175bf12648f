"""Store records to API messages."""

from __future__ import annotations

from controller.audit import AuditRow
from controller.failover.machine import Failover
from controller.failover.model import FailoverState, Trigger
from controller.store.interface import MaintenanceRow
from hangwatch import pbtime
from hangwatch.messages import enum_number
from hangwatch.v1 import admin_service_pb2 as admin_pb

STATE = {s: enum_number(admin_pb.FailoverState, s.value) for s in FailoverState}
TRIGGER = {t: enum_number(admin_pb.FailoverTrigger, t.value) for t in Trigger}
SCOPE = {
    "host": admin_pb.MAINTENANCE_SCOPE_HOST,
    "group": admin_pb.MAINTENANCE_SCOPE_GROUP,
    "cluster": admin_pb.MAINTENANCE_SCOPE_CLUSTER,
}


def failover(f: Failover) -> admin_pb.Failover:
    msg = admin_pb.Failover(
        id=f.id,
        group=f.group,
        state=STATE[f.state],
        trigger=TRIGGER[f.trigger],
        from_host=f.from_host,
        to_host=f.to_host,
        epoch=f.epoch,
        reason=f.reason,
        proposed_by=f.proposed_by,
        approved_by=f.approved_by,
        incident_id=f.incident_id,
        forced=f.forced,
        created_at=pbtime.timestamp(f.created_at),
        updated_at=pbtime.timestamp(f.steps[-1].at if f.steps else f.created_at),
    )
    for c in f.candidates:
        cand = msg.candidates.add(host_id=c.host_id, eligible=c.eligible, reasons=c.reasons)
        if c.probe_latency is not None:
            cand.probe_latency.CopyFrom(pbtime.duration(c.probe_latency))
    for s in f.steps:
        msg.steps.add(
            state=STATE[s.state], at=pbtime.timestamp(s.at), actor=s.actor, detail=s.detail
        )
    if f.not_before is not None:
        msg.not_before.CopyFrom(pbtime.timestamp(f.not_before))
    return msg


def audit(row: AuditRow) -> admin_pb.AuditEntry:
    return admin_pb.AuditEntry(
        seq=row.seq,
        at=pbtime.timestamp(row.at),
        actor=row.actor,
        role=row.role,
        action=row.action,
        target=row.target,
        detail=row.detail,
        allowed=row.allowed,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def maintenance(row: MaintenanceRow) -> admin_pb.Maintenance:
    msg = admin_pb.Maintenance(
        scope=SCOPE[row.scope],
        target=row.target,
        enabled=True,
        reason=row.reason,
        set_by=row.set_by,
        set_at=pbtime.timestamp(row.set_at),
    )
    if row.until is not None:
        msg.until.CopyFrom(pbtime.timestamp(row.until))
    return msg
