"""The outbox's batches stay within a byte budget, whatever the events carry."""

from __future__ import annotations

from agent.link.outbox import Outbox
from hangwatch.v1 import types_pb2 as pb


def test_batches_are_cut_by_bytes_but_never_empty():
    outbox = Outbox(100, lambda _: True)
    for n in range(1, 11):
        event = pb.Event(id=f"e{n}", host_seq=n)
        event.evidence.kernel_lines.append("x" * 1000)
        outbox.put(event)
    size = outbox.batch(1, 10**9)[0].ByteSize()
    assert [e.id for e in outbox.batch(100, 3 * size)] == ["e1", "e2", "e3"]
    assert [e.id for e in outbox.batch(2, 10**9)] == ["e1", "e2"]
    assert [e.id for e in outbox.batch(100, 10)] == ["e1"]  # one too big still goes alone
