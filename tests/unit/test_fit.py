"""The agent sends only what the controller takes: events cut to the limits, batches
bounded by bytes."""

from __future__ import annotations

from clusterkit import kernel_event as event

from agent.events import droppable
from agent.link.fit import EVENT_BYTES, TRUNCATED, fit
from agent.link.outbox import Outbox
from agent.link.reporter import BATCH_BYTES
from hangwatch import limits


def test_an_event_within_the_limits_is_sent_as_it_is():
    e = event(1, ["INFO: task imapd:4242 blocked for more than 30 seconds."] * 40)
    assert fit(e) is e


def test_an_oversized_event_is_cut_to_fit_and_says_so():
    lines = [f"line {i} " + "x" * 4000 for i in range(100)]
    big = event(1, ["INFO: task imapd:4242 blocked for more than 30 seconds.", *lines])
    big.summary = "s" * 5000
    big.evidence.stuck_tasks.add(pid=1, comm="imapd", stack=["f" * 900] * 20)
    cut = fit(big)
    limits.check(cut)
    assert cut.ByteSize() <= EVENT_BYTES
    assert (cut.id, cut.host_seq, cut.kind) == (big.id, big.host_seq, big.kind)
    assert cut.summary.endswith("[... 5000 characters cut]") and len(cut.summary) == 1024
    assert cut.evidence.kernel_lines[0].startswith("INFO: task imapd:4242 blocked")
    assert cut.evidence.kernel_lines[-1] == lines[-1]
    assert any("lines cut" in line for line in cut.evidence.kernel_lines)
    assert cut.evidence.stuck_tasks[0].stack[0].endswith("[... 900 characters cut]")
    assert cut.evidence.attributes[TRUNCATED].startswith(f"{big.ByteSize()} bytes cut to fit")


def test_batches_are_bounded_by_bytes_as_well_as_by_count():
    """Before: 500 events with long excerpts made a 4.46 MB batch, refused for ever."""
    outbox = Outbox(1000, droppable)
    for seq in range(1, 501):
        outbox.put(event(seq, ["k" * 300] * 30))
    batch = outbox.batch(500, BATCH_BYTES)
    assert 100 < len(batch) < 500
    assert sum(e.ByteSize() for e in batch) <= BATCH_BYTES
    assert [e.host_seq for e in batch] == list(range(1, len(batch) + 1))
    # One event more than the bytes allow still goes, alone.
    assert len(outbox.batch(500, 10)) == 1
