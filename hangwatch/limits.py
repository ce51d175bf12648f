"""What any API message may hold, read from the proto descriptors: one walk over every
field, so a field added to a .proto is checked the day it is added.

The controller runs `check` on every request before its handler (and so before
anything is stored); the agent fits its events to the same limits before sending
them. What passes can always be stored, listed and printed as JSON: times are in
the range and sign the JSON mapping accepts, enums are known, numbers finite.

| What                         | Limit                                                   |
|------------------------------|---------------------------------------------------------|
| identifier (TEXT_KIND_...)   | 256 characters, printable only                          |
| path                         | 4096 characters, printable only                         |
| summary                      | 1024 characters                                         |
| excerpt                      | 8192 characters                                         |
| evidence (attribute value)   | 1024 characters                                         |
| free text (unmarked string)  | 4096 characters                                         |
| map key                      | as an identifier                                        |
| list or map                  | 1000 entries                                            |
| enum                         | a value the enum declares                               |
| unsigned 64-bit integer      | at most 2**63 - 1 (what the store keeps)                |
| float, double                | finite                                                  |
| Timestamp                    | 0001-01-01 to 9999-12-31; nanos in [0, 1e9)             |
| Duration                     | 0 to 10 000 years: never negative, nanos in [0, 1e9)    |
| Event                        | 128 KiB serialised                                      |
| CommandResult                | 64 KiB serialised                                       |
| RegisterRequest              | 512 KiB serialised                                      |
| HeartbeatRequest             | 256 KiB serialised                                      |
| ReportEventsRequest          | 3 MiB serialised (gRPC's own limit is 4 MiB)            |
| any other request            | 256 KiB serialised                                      |

Which kind a string is comes from its `(text_kind)` option (protos/hangwatch/v1/
options.proto). Handlers add their own, tighter checks (host id syntax, ULIDs,
required fields, counts such as mounts per host).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from hangwatch.errors import Invalid
from hangwatch.printable import escape, first_unprintable
from hangwatch.v1 import options_pb2

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class TextLimit:
    name: str
    chars: int
    # Only printable characters (no ESC, no newline, no bidi override).
    printable: bool


TEXT_LIMITS: dict[int, TextLimit] = {
    options_pb2.TEXT_KIND_IDENTIFIER: TextLimit("identifier", 256, printable=True),
    options_pb2.TEXT_KIND_PATH: TextLimit("path", 4096, printable=True),
    options_pb2.TEXT_KIND_SUMMARY: TextLimit("summary", 1024, printable=False),
    options_pb2.TEXT_KIND_EXCERPT: TextLimit("excerpt", 8192, printable=False),
    options_pb2.TEXT_KIND_EVIDENCE: TextLimit("evidence", 1024, printable=False),
    options_pb2.TEXT_KIND_UNSPECIFIED: TextLimit("free text", 4096, printable=False),
}
KEY_LIMIT = TEXT_LIMITS[options_pb2.TEXT_KIND_IDENTIFIER]
MAX_ITEMS = 1000
# Serialised size of these messages wherever they appear.
MESSAGE_BYTES = {
    "hangwatch.v1.Event": 128 * KIB,
    "hangwatch.v1.CommandResult": 64 * KIB,
    "hangwatch.v1.RegisterRequest": 512 * KIB,
    "hangwatch.v1.HeartbeatRequest": 256 * KIB,
    "hangwatch.v1.ReportEventsRequest": 3 * MIB,
}
# Any other request as a whole.
REQUEST_BYTES = 256 * KIB
# What the store keeps in an INTEGER column (SQLite's are signed 64-bit).
MAX_INTEGER = 2**63 - 1
NANOS = 1_000_000_000
# The JSON mapping's ranges: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z, and
# +-10 000 years.
TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)
MAX_DURATION_SECONDS = 315_576_000_000

_UNSIGNED_64 = (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64)
_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
_TIMESTAMP = "google.protobuf.Timestamp"
_DURATION = "google.protobuf.Duration"


@functools.cache
def text_limit(fd: FieldDescriptor) -> TextLimit:
    """The limit of a string field (of a map field: of its values)."""
    options = fd.GetOptions()
    if not options.HasExtension(options_pb2.text_kind):
        return TEXT_LIMITS[options_pb2.TEXT_KIND_UNSPECIFIED]
    return TEXT_LIMITS[options.Extensions[options_pb2.text_kind]]


def check_request(message: Message) -> None:
    """`check` for a whole request, which is also held to REQUEST_BYTES unless it has a
    budget of its own."""
    check(message)
    if message.DESCRIPTOR.full_name not in MESSAGE_BYTES:
        _size(message, REQUEST_BYTES, "request")


def check(message: Message, prefix: str = "") -> None:
    """Raises Invalid naming the first field of `message` (recursively, as a path such
    as `events[3].evidence.stuck_tasks[0].blocked_for.nanos`) that is beyond its limits."""
    for fd, value in message.ListFields():
        name = prefix + fd.name
        if not fd.is_repeated:
            _value(fd, value, name)
            continue
        if len(value) > MAX_ITEMS:
            raise Invalid(name, f"{len(value)} entries, the limit is {MAX_ITEMS}")
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            entry = fd.message_type.fields_by_name
            for key, item in value.items():
                where = f"{name}[{escape(str(key)[:64])}]"
                if isinstance(key, str):
                    _text(key, KEY_LIMIT, where)
                _value(entry["value"], item, where, text_limit(fd))
        else:
            for i, item in enumerate(value):
                _value(fd, item, f"{name}[{i}]")
    # After the fields: a field beyond its own limit is the better answer.
    budget = MESSAGE_BYTES.get(message.DESCRIPTOR.full_name)
    if budget is not None:
        _size(message, budget, prefix.removesuffix(".") or "request")


def check_times(message: Message, prefix: str = "") -> None:
    """`check` of the Timestamp and Duration fields only: the values that make a message
    fail its JSON view. Cheap enough for every record read back from the store."""
    for fd in _timed_fields(message.DESCRIPTOR):
        if fd.is_repeated:
            for i, item in enumerate(getattr(message, fd.name)):
                _time_or_nested(fd, item, f"{prefix}{fd.name}[{i}]")
        elif message.HasField(fd.name):
            _time_or_nested(fd, getattr(message, fd.name), prefix + fd.name)


def _time_or_nested(fd: FieldDescriptor, value: Message, name: str) -> None:
    if value.DESCRIPTOR.full_name in (_TIMESTAMP, _DURATION):
        _value(fd, value, name)
    else:
        check_times(value, name + ".")


@functools.cache
def _timed_fields(desc: Descriptor) -> tuple[FieldDescriptor, ...]:
    """The message fields of `desc` that are, or may hold, a Timestamp or Duration."""
    return tuple(
        fd
        for fd in desc.fields
        if fd.message_type is not None
        and not fd.message_type.GetOptions().map_entry
        and (fd.message_type.full_name in (_TIMESTAMP, _DURATION) or _timed_fields(fd.message_type))
    )


def _size(message: Message, budget: int, name: str) -> None:
    size = message.ByteSize()
    if size > budget:
        raise Invalid(name, f"is {size} bytes serialised, the limit is {budget}")


def _value(fd: FieldDescriptor, value: Any, name: str, limit: TextLimit | None = None) -> None:
    if fd.type == FieldDescriptor.TYPE_STRING:
        _text(value, limit or text_limit(fd), name)
    elif fd.type == FieldDescriptor.TYPE_BYTES:
        free = TEXT_LIMITS[options_pb2.TEXT_KIND_UNSPECIFIED]
        if len(value) > free.chars:
            raise Invalid(name, f"is {len(value)} bytes long, the limit is {free.chars}")
    elif fd.type in _UNSIGNED_64:
        if value > MAX_INTEGER:
            raise Invalid(name, f"{value} is above the limit {MAX_INTEGER}")
    elif fd.type in _FLOATS:
        if not math.isfinite(value):
            raise Invalid(name, f"{value} is not a finite number")
    elif fd.enum_type is not None:
        if value not in fd.enum_type.values_by_number:
            raise Invalid(name, f"{value} is not a value of {fd.enum_type.name}")
    elif fd.message_type is not None:
        kind = fd.message_type.full_name
        if kind == _TIMESTAMP:
            _timestamp(value.seconds, value.nanos, name)
        elif kind == _DURATION:
            _duration(value.seconds, value.nanos, name)
        else:
            check(value, name + ".")


def _text(value: str, limit: TextLimit, name: str) -> None:
    if len(value) > limit.chars:
        raise Invalid(
            name, f"is {len(value)} characters long, the limit for {limit.name} is {limit.chars}"
        )
    if limit.printable:
        at = first_unprintable(value)
        if at is not None:
            raise Invalid(
                name,
                f"{value[:80]!r} has the unprintable character {escape(value[at])} at "
                f"{at}: {limit.name}s are printable text",
            )


def _timestamp(seconds: int, nanos: int, name: str) -> None:
    low, high = TIMESTAMP_SECONDS
    if not low <= seconds <= high:
        raise Invalid(f"{name}.seconds", f"{seconds} is outside years 0001 to 9999")
    if not 0 <= nanos < NANOS:
        raise Invalid(f"{name}.nanos", f"{nanos} is outside [0, {NANOS})")


def _duration(seconds: int, nanos: int, name: str) -> None:
    if not -NANOS < nanos < NANOS:
        raise Invalid(f"{name}.nanos", f"{nanos} is outside (-{NANOS}, {NANOS})")
    if (seconds < 0 < nanos) or (nanos < 0 < seconds):
        raise Invalid(f"{name}.nanos", f"{nanos} and seconds {seconds} differ in sign")
    if seconds < 0 or nanos < 0:
        raise Invalid(name, f"{seconds + nanos / NANOS:g}s is negative: a duration is a length")
    if seconds > MAX_DURATION_SECONDS:
        raise Invalid(f"{name}.seconds", f"{seconds} is above {MAX_DURATION_SECONDS} (10 000 yr)")
