"""Request validation: every handler checks its input before touching state.

Every request has passed `hangwatch.limits` already (the access gate runs it: sizes
by kind of field, times, enums, numbers); these are each request's own rules on top
(host id syntax, ULIDs, required fields, counts per host and per event, one content
per event id). Each check raises `hangwatch.errors.Invalid(field, problem)`; the API
layer turns it into INVALID_ARGUMENT with "field: problem" so a caller knows what to fix.
"""

from __future__ import annotations

import re

from hangwatch.errors import Invalid
from hangwatch.ids import host_id_problem, is_kind, is_ulid
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb

# Names people give things: advisories, drafts, upgrade plans.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
MAX_MOUNTS = 256
MAX_EVENTS_PER_BATCH = 1000
MAX_KERNEL_LINES = 200
MAX_ATTRIBUTES = 64
MAX_SOURCES = 64
# Agents bound a lockup's evidence to 64 KiB; twice that leaves room for another release.
MAX_LOCKUP_EVIDENCE_BYTES = 128 * 1024


def host_id(value: str, field: str = "host_id") -> None:
    problem = host_id_problem(value)
    if problem:
        raise Invalid(field, problem)


def name(value: str, field: str) -> None:
    if not NAME_RE.match(value):
        raise Invalid(
            field, f"{value[:80]!r} is not a name (letters, digits, '.', '_', ':', '-'; max 64)"
        )


def text(value: str, field: str, limit: int, required: bool = False) -> None:
    if required and not value:
        raise Invalid(field, "is required")
    if len(value) > limit:
        raise Invalid(field, f"is {len(value)} characters long, the limit is {limit}")


def path(value: str, field: str) -> None:
    if not value.startswith("/"):
        raise Invalid(field, f"{value[:80]!r} is not an absolute path")


def register(req: agent_pb.RegisterRequest) -> None:
    host_id(req.host_id)
    text(req.boot_id, "boot_id", 64, required=True)
    text(req.agent_version, "agent_version", 64)
    if len(req.mounts) > MAX_MOUNTS:
        raise Invalid("mounts", f"{len(req.mounts)} mounts, the limit is {MAX_MOUNTS}")
    seen = set()
    for i, mount in enumerate(req.mounts):
        path(mount.path, f"mounts[{i}].path")
        if mount.path in seen:
            raise Invalid(f"mounts[{i}].path", f"{mount.path!r} is listed twice")
        seen.add(mount.path)
        text(mount.fs_type, f"mounts[{i}].fs_type", 64)
    text(req.inventory.kernel_release, "inventory.kernel_release", 256)
    text(req.inventory.kernel_version, "inventory.kernel_version", 512)
    text(req.inventory.os_release, "inventory.os_release", 512)


def heartbeat(req: agent_pb.HeartbeatRequest) -> None:
    host_id(req.host_id)
    text(req.boot_id, "boot_id", 64, required=True)
    if len(req.mounts) > MAX_MOUNTS:
        raise Invalid("mounts", f"{len(req.mounts)} mounts, the limit is {MAX_MOUNTS}")
    for i, mount in enumerate(req.mounts):
        path(mount.mount, f"mounts[{i}].mount")
        enum_value(mount.state, pb.HealthState, f"mounts[{i}].state")
    if len(req.sources) > MAX_SOURCES:
        raise Invalid("sources", f"{len(req.sources)} sources, the limit is {MAX_SOURCES}")
    for i, source in enumerate(req.sources):
        text(source.source, f"sources[{i}].source", 64, required=True)


def event(ev: pb.Event, field: str, host: str) -> None:
    if not is_ulid(ev.id):
        raise Invalid(f"{field}.id", f"{ev.id[:40]!r} is not a ULID")
    if ev.host_id != host:
        raise Invalid(f"{field}.host_id", f"{ev.host_id[:80]!r} differs from the request's host")
    if ev.host_seq == 0:
        raise Invalid(f"{field}.host_seq", "must be 1 or more")
    if ev.mount:
        path(ev.mount, f"{field}.mount")
    if not is_kind(ev.kind):
        raise Invalid(f"{field}.kind", f"{ev.kind[:80]!r} is not UPPER_SNAKE_CASE (max 64)")
    enum_value(ev.severity, pb.Severity, f"{field}.severity")
    if ev.HasField("notice"):
        raise Invalid(f"{field}.notice", "is the controller's to set (its own events only)")
    if not ev.HasField("occurred_at"):
        raise Invalid(f"{field}.occurred_at", "is required")
    evidence = ev.evidence
    if len(evidence.kernel_lines) > MAX_KERNEL_LINES:
        raise Invalid(
            f"{field}.evidence.kernel_lines",
            f"{len(evidence.kernel_lines)} lines, the limit is {MAX_KERNEL_LINES}",
        )
    if len(evidence.attributes) > MAX_ATTRIBUTES:
        raise Invalid(
            f"{field}.evidence.attributes",
            f"{len(evidence.attributes)} entries, the limit is {MAX_ATTRIBUTES}",
        )
    for key in evidence.attributes:
        text(key, f"{field}.evidence.attributes", 64)
    lockup = evidence.lockup.ByteSize()
    if lockup > MAX_LOCKUP_EVIDENCE_BYTES:
        raise Invalid(
            f"{field}.evidence.lockup",
            f"is {lockup} bytes serialized, the limit is {MAX_LOCKUP_EVIDENCE_BYTES}",
        )


def report_events(req: agent_pb.ReportEventsRequest) -> None:
    host_id(req.host_id)
    if len(req.events) > MAX_EVENTS_PER_BATCH:
        raise Invalid(
            "events", f"{len(req.events)} events in one batch, the limit is {MAX_EVENTS_PER_BATCH}"
        )
    first: dict[str, tuple[int, bytes]] = {}
    for i, ev in enumerate(req.events):
        event(ev, f"events[{i}]", req.host_id)
        body = ev.SerializeToString(deterministic=True)
        seen = first.setdefault(ev.id, (i, body))
        if seen[1] != body:
            raise Invalid(
                f"events[{i}].id",
                f"{ev.id} is also the id of events[{seen[0]}], with other content: "
                "one id, one event",
            )


def enum_value(value: int, enum: object, field: str) -> None:
    values = enum.values()  # type: ignore[attr-defined]
    if value not in values or value == 0:
        raise Invalid(field, f"{value} is not a valid value")


def command_result(result: pb.CommandResult) -> None:
    text(result.command_id, "result.command_id", 128, required=True)
    host_id(result.host_id, "result.host_id")
    enum_value(result.status, pb.CommandStatus, "result.status")
