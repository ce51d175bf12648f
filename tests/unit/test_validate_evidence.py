"""The controller refuses lockup evidence beyond what any agent sends, naming the field,
and takes the biggest evidence an agent's bounds allow."""

from __future__ import annotations

import pytest

from agent.evidence import bounds
from controller.api import validate
from hangwatch import pbtime
from hangwatch.errors import Invalid
from hangwatch.v1 import types_pb2 as pb

ULID = "01JAAAAAAAAAAAAAAAAAAAAAAA"


def event_with(lockup: pb.LockupEvidence) -> pb.Event:
    event = pb.Event(
        id=ULID,
        host_id="h1",
        host_seq=1,
        kind="LOCKUP_CONFIRMED",
        severity=pb.SEVERITY_CRITICAL,
        occurred_at=pbtime.timestamp(1.0),
    )
    event.evidence.lockup.CopyFrom(lockup)
    return event


def test_the_most_an_agent_sends_passes_and_more_is_refused():
    lockup = pb.LockupEvidence()
    lockup.kernel_log.extend("k" * 8000 for _ in range(40))  # 320 KB before bounding
    too_big = event_with(lockup)
    with pytest.raises(Invalid, match=r"events\[0\]\.evidence\.lockup: is \d+ bytes"):
        validate.event(too_big, "events[0]", "h1")
    bounds.bound(lockup)
    validate.event(event_with(lockup), "events[0]", "h1")
