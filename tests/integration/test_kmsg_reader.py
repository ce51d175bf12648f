"""The reader on the real /dev/kmsg: injected lines arrive through the event loop.

Userspace writes to /dev/kmsg get facility 1 (user), which the kernel's own records
(facility 0) never have: the test recognizes its lines by that and a unique token.
"""

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest
from rootreq import require_root

from agent.kmsg.reader import Batch, KmsgReader, hung_task_detect_count
from agent.kmsg.record import USER_FACILITY, KmsgRecord

pytestmark = pytest.mark.root
KMSG = "/dev/kmsg"


def inject(text: str) -> None:
    fd = os.open(KMSG, os.O_WRONLY)
    try:
        os.write(fd, f"<12>{text}\n".encode())
    finally:
        os.close(fd)


def ours(batch: Batch, token: str) -> list[KmsgRecord]:
    return [r for r in batch.records if isinstance(r, KmsgRecord) and token in r.text]


@pytest.fixture
def kmsg():
    require_root()
    if not Path(KMSG).exists():
        pytest.skip(f"{KMSG} missing")


def test_reader_sees_injected_lines_without_blocking(kmsg):
    asyncio.run(asyncio.wait_for(_inject_and_receive(uuid.uuid4().hex), timeout=10))


async def _inject_and_receive(token: str) -> None:
    received: list[KmsgRecord] = []
    arrived = asyncio.Event()

    def on_batch(batch: Batch) -> None:
        received.extend(ours(batch, token))
        if len(received) >= 3:
            arrived.set()

    reader = KmsgReader()
    reader.start(on_batch)
    try:
        # Starting at the end: nothing is there yet, and reading must not block.
        started = time.monotonic()
        assert reader.read_batch().records == []
        assert time.monotonic() - started < 0.5
        for i in range(3):
            inject(f"hangwatch-test {token} {i}")
        await asyncio.wait_for(arrived.wait(), timeout=5)
    finally:
        reader.close()
    assert [r.text for r in received] == [f"hangwatch-test {token} {i}" for i in range(3)]
    assert all(r.facility == USER_FACILITY and r.level == 4 for r in received)
    seqs = [r.seq for r in received]
    assert seqs == sorted(seqs)


def test_replay_from_start_finds_earlier_lines(kmsg):
    token = uuid.uuid4().hex
    inject(f"hangwatch-test {token} replay")
    with KmsgReader(from_start=True) as reader:
        found: list[KmsgRecord] = []
        for _ in range(1000):
            batch = reader.read_batch()
            found += ours(batch, token)
            if found or not batch.records:
                break
    assert [r.text for r in found] == [f"hangwatch-test {token} replay"]


def test_hung_task_detect_count_on_this_kernel(kmsg):
    count = hung_task_detect_count()
    if not Path("/proc/sys/kernel/hung_task_detect_count").exists():
        assert count is None
    else:
        assert isinstance(count, int) and count >= 0
