"""Events cut down to what the controller takes, before they are queued to send.

The controller refuses an event beyond `hangwatch.limits` (a string longer than its
kind allows, more than 128 KiB in all); resending it as it is would be refused for
ever and hold back every event behind it. An event queued here is checked against
the same limits, and one that does not fit goes out cut down and marked (a
`truncated` attribute saying how much): the lockup it reports still arrives. Events
replayed from the spool pass here too, so an event spooled by an agent without these
checks is cut down after a restart as well.
"""

from __future__ import annotations

import logging

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from hangwatch import limits
from hangwatch.errors import Invalid
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

EVENT_BYTES = limits.MESSAGE_BYTES[pb.Event.DESCRIPTOR.full_name]
TRUNCATED = "truncated"
_TIMES = ("google.protobuf.Timestamp", "google.protobuf.Duration")


def fit(event: pb.Event) -> pb.Event:
    """`event` itself when the controller takes it as it is; else a marked copy cut
    down to fit (what cutting cannot mend, such as a control character in a path, the
    controller refuses and the reporter drops)."""
    try:
        limits.check(event)
    except Invalid as problem:
        before = event.ByteSize()
        cut = pb.Event()
        cut.CopyFrom(event)
        _cut_strings(cut)
        _cut_evidence(cut.evidence)
        cut.evidence.attributes[TRUNCATED] = f"{before} bytes cut to fit ({problem})"[:200]
        log.warning("event %s (%s) cut down to fit: %s", event.id, event.kind, problem)
        return cut
    return event


def _cut_strings(message: Message) -> None:
    """Every string, list and map of `message` (recursively) cut to its limit."""
    for fd, value in message.ListFields():
        if fd.message_type is not None and fd.message_type.full_name in _TIMES:
            continue
        if fd.is_repeated and len(value) > limits.MAX_ITEMS:
            for key in sorted(value)[limits.MAX_ITEMS :] if _is_map(fd) else ():
                del value[key]
            if not _is_map(fd):
                del value[limits.MAX_ITEMS :]
        chars = limits.text_limit(fd).chars
        if _is_map(fd):
            for key in list(value):
                if not isinstance(value[key], Message):
                    value[key] = _cut(value[key], chars)
        elif fd.type == FieldDescriptor.TYPE_STRING and fd.is_repeated:
            value[:] = [_cut(item, chars) for item in value]
        elif fd.type == FieldDescriptor.TYPE_STRING:
            setattr(message, fd.name, _cut(value, chars))
        elif fd.message_type is not None and fd.is_repeated:
            for item in value:
                _cut_strings(item)
        elif fd.message_type is not None:
            _cut_strings(value)


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _cut(text: str, chars: int) -> str:
    if len(text) <= chars:
        return text
    marker = f" [... {len(text)} characters cut]"
    return text[: chars - len(marker)] + marker


def _cut_evidence(evidence: pb.Evidence) -> None:
    """Evidence cut until the event fits its byte budget: the middle of the kernel
    lines first (a report's header and its end say the most), then call stacks, then
    stuck tasks, then attributes."""
    budget = EVENT_BYTES - 4 * 1024  # room for the rest of the event and the marker
    while evidence.ByteSize() > budget:
        lines = evidence.kernel_lines
        if len(lines) > 2:
            keep = len(lines) // 4
            marker = f"... {len(lines) - 2 * keep} lines cut ..."
            lines[:] = [*lines[:keep], marker, *lines[len(lines) - keep :]]
        elif any(task.stack for task in evidence.stuck_tasks):
            for task in evidence.stuck_tasks:
                del task.stack[len(task.stack) // 2 :]
        elif evidence.stuck_tasks:
            del evidence.stuck_tasks[len(evidence.stuck_tasks) // 2 :]
        elif lines:
            del lines[:]
        elif evidence.attributes:
            largest = max(evidence.attributes, key=lambda k: len(evidence.attributes[k]))
            del evidence.attributes[largest]
        else:
            return
