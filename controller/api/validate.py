"""Request validation: every handler checks its input before touching state.

Each check raises `hangwatch.errors.Invalid(field, problem)`; the API layer turns it
into INVALID_ARGUMENT with "field: problem" so a caller knows what to fix.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from hangwatch.errors import Invalid
from hangwatch.ids import is_ulid
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb

HOST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
KIND_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
MAX_MOUNTS = 256
MAX_PATH = 4096
MAX_TEXT = 4096
MAX_EVENTS_PER_BATCH = 1000
MAX_KERNEL_LINES = 200
MAX_ATTRIBUTES = 64


def host_id(value: str, field: str = "host_id") -> None:
    if not HOST_ID_RE.match(value):
        raise Invalid(
            field,
            f"{value[:80]!r} is not a host id "
            "(letters, digits, '.', '_', '-'; at most 253 characters)",
        )


def text(value: str, field: str, limit: int = MAX_TEXT, required: bool = False) -> None:
    if required and not value:
        raise Invalid(field, "is required")
    if len(value) > limit:
        raise Invalid(field, f"is {len(value)} characters long, the limit is {limit}")


def path(value: str, field: str) -> None:
    if not value.startswith("/"):
        raise Invalid(field, f"{value[:80]!r} is not an absolute path")
    text(value, field, MAX_PATH)


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
        text(mount.device, f"mounts[{i}].device", MAX_PATH)
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
        text(mount.reason, f"mounts[{i}].reason", 1024)
    if len(req.sources) > MAX_SOURCES:
        raise Invalid("sources", f"{len(req.sources)} sources, the limit is {MAX_SOURCES}")
    for i, source in enumerate(req.sources):
        text(source.source, f"sources[{i}].source", 64, required=True)
        text(source.detail, f"sources[{i}].detail", 1024)
    for group in req.epochs:
        text(group, "epochs", 128, required=True)


def event(ev: pb.Event, field: str, host: str) -> None:
    if not is_ulid(ev.id):
        raise Invalid(f"{field}.id", f"{ev.id[:40]!r} is not a ULID")
    if ev.host_id != host:
        raise Invalid(f"{field}.host_id", f"{ev.host_id[:80]!r} differs from the request's host")
    if ev.host_seq == 0:
        raise Invalid(f"{field}.host_seq", "must be 1 or more")
    if ev.mount:
        path(ev.mount, f"{field}.mount")
    if not KIND_RE.match(ev.kind):
        raise Invalid(f"{field}.kind", f"{ev.kind[:80]!r} is not UPPER_SNAKE_CASE (max 64)")
    enum_value(ev.severity, pb.Severity, f"{field}.severity")
    if not ev.HasField("occurred_at"):
        raise Invalid(f"{field}.occurred_at", "is required")
    text(ev.summary, f"{field}.summary", 1024)
    evidence = ev.evidence
    if len(evidence.kernel_lines) > MAX_KERNEL_LINES:
        raise Invalid(
            f"{field}.evidence.kernel_lines",
            f"{len(evidence.kernel_lines)} lines, the limit is {MAX_KERNEL_LINES}",
        )
    for j, line in enumerate(evidence.kernel_lines):
        text(line, f"{field}.evidence.kernel_lines[{j}]", 1024)
    if len(evidence.attributes) > MAX_ATTRIBUTES:
        raise Invalid(
            f"{field}.evidence.attributes",
            f"{len(evidence.attributes)} entries, the limit is {MAX_ATTRIBUTES}",
        )
    for key, value in evidence.attributes.items():
        text(key, f"{field}.evidence.attributes", 64)
        text(value, f"{field}.evidence.attributes[{key[:64]}]", 1024)


def report_events(req: agent_pb.ReportEventsRequest) -> None:
    host_id(req.host_id)
    if len(req.events) > MAX_EVENTS_PER_BATCH:
        raise Invalid(
            "events", f"{len(req.events)} events in one batch, the limit is {MAX_EVENTS_PER_BATCH}"
        )
    for i, ev in enumerate(req.events):
        event(ev, f"events[{i}]", req.host_id)


def enum_value(value: int, enum: object, field: str) -> None:
    values = enum.values()  # type: ignore[attr-defined]
    if value not in values or value == 0:
        raise Invalid(field, f"{value} is not a valid value")


def command_result(result: pb.CommandResult) -> None:
    text(result.command_id, "result.command_id", 128, required=True)
    host_id(result.host_id, "result.host_id")
    enum_value(result.status, pb.CommandStatus, "result.status")
    text(result.output_tail, "result.output_tail", 8192)


# The backstop every request passes (controller.api.access) before its own checks: no
# string, list or map is unbounded and no enum or time is out of range, even in a
# field no handler looks at yet. The handlers' checks are tighter where it matters.
MAX_STRING = 8192
MAX_REPEATED = 1000
MAX_SOURCES = 64
# What the store keeps in an INTEGER column (SQLite's are signed 64-bit).
MAX_INTEGER = 2**63 - 1
_UNSIGNED_64 = (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64)
_TIME_RANGES = {
    # protobuf's own valid ranges: 0001-01-01 to 9999-12-31, and +-10 000 years.
    "google.protobuf.Timestamp": (-62_135_596_800, 253_402_300_799),
    "google.protobuf.Duration": (-315_576_000_000, 315_576_000_000),
}


def bounded(message: Message, prefix: str = "") -> None:
    """Raises Invalid for the first field of `message` (recursively) beyond the limits."""
    for fd, value in message.ListFields():
        name = prefix + fd.name
        if not fd.is_repeated:
            _bounded_value(fd, value, name)
            continue
        if len(value) > MAX_REPEATED:
            raise Invalid(name, f"{len(value)} entries, the limit is {MAX_REPEATED}")
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            entry = fd.message_type.fields_by_name
            for key, item in value.items():
                _bounded_value(entry["key"], key, name)
                _bounded_value(entry["value"], item, f"{name}[{str(key)[:64]}]")
        else:
            for i, item in enumerate(value):
                _bounded_value(fd, item, f"{name}[{i}]")


def _bounded_value(fd: FieldDescriptor, value: Any, name: str) -> None:
    if fd.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        if len(value) > MAX_STRING:
            raise Invalid(name, f"is {len(value)} long, the limit is {MAX_STRING}")
    elif fd.type in _UNSIGNED_64:
        if value > MAX_INTEGER:
            raise Invalid(name, f"{value} is above the limit {MAX_INTEGER}")
    elif fd.enum_type is not None:
        if value not in fd.enum_type.values_by_number:
            raise Invalid(name, f"{value} is not a valid value")
    elif fd.message_type is not None:
        limits = _TIME_RANGES.get(fd.message_type.full_name)
        if limits is None:
            bounded(value, name + ".")
        elif not limits[0] <= value.seconds <= limits[1] or not -1e9 < value.nanos < 1e9:
            raise Invalid(name, "is out of range")
