"""The values the etcd store writes (layout and encoding in .keys), built in one place
so that the store and a migration into it write the same bytes for the same thing."""

from __future__ import annotations

import dataclasses
from typing import Any

from controller.store import records
from controller.store.etcd.keys import dump, message
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb


def row(record: Any) -> bytes:
    """A flat row (AuditRow, MaintenanceRow, IncidentRow, AdvisoryRow) as it is."""
    return dump(dataclasses.asdict(record))


def record(record: Any, updated_at: float, term: int) -> bytes:
    """A whole machine record (Failover, Plan), with when and in which term it was written."""
    return dump({"record": records.to_json(record), "updated_at": updated_at, "term": term})


def event(event: pb.Event, received_at: float) -> bytes:
    body = pb.Event()
    body.CopyFrom(event)
    body.ClearField("cursor")
    body.ClearField("received_at")
    return dump({"received_at": received_at, "body": message(body)})


def host(request: agent_pb.RegisterRequest, registered_at: float) -> bytes:
    return dump(
        {
            "host_id": request.host_id,
            "boot_id": request.boot_id,
            "agent_version": request.agent_version,
            "registered_at": registered_at,
            "registration": message(request),
        }
    )


def heartbeat(request: agent_pb.HeartbeatRequest, at: float) -> bytes:
    return dump({"at": at, "body": message(request)})


def group(
    name: str, primary: str, epoch: int, auto_blocked_until: float | None, term: int
) -> bytes:
    return dump(
        {
            "name": name,
            "primary": primary,
            "epoch": epoch,
            "auto_blocked_until": auto_blocked_until,
            "term": term,
        }
    )


def command(
    host_id: str,
    created_at: float,
    body: pb.Command,
    result: pb.CommandResult | None = None,
    reported_at: float | None = None,
) -> bytes:
    return dump(
        {
            "host_id": host_id,
            "created_at": created_at,
            "body": message(body),
            "result": None if result is None else message(result),
            "reported_at": reported_at,
        }
    )


def fence_result(ok: bool, detail: str, at: float) -> bytes:
    return dump({"ok": ok, "detail": detail, "at": at})


def dead_letter(
    letter_id: int,
    sink: str,
    event_id: str,
    attempts: int,
    last_error: str,
    failed_at: float,
    cursor: int,
    requeued_at: float | None,
) -> bytes:
    return dump(
        {
            "id": letter_id,
            "sink": sink,
            "event_id": event_id,
            "attempts": attempts,
            "last_error": last_error,
            "failed_at": failed_at,
            "cursor": cursor,
            "requeued_at": requeued_at,
        }
    )
