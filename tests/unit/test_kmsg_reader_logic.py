"""Reader logic without a kernel: overruns and seq gaps, and the hung-task counter."""

import os

import pytest

from agent.kmsg import reader as reader_module
from agent.kmsg.reader import KmsgReader, hung_task_detect_count
from agent.kmsg.record import KmsgRecord


def record(seq: int) -> bytes:
    return b"6,%d,%d,-;message %d\n" % (seq, seq * 10, seq)


@pytest.fixture
def scripted(monkeypatch, tmp_path):
    """A reader whose read() calls return a script of records and errors."""
    path = tmp_path / "kmsg"
    path.write_bytes(b"")
    script: list[bytes | type[OSError]] = []

    def fake_read(fd: int, size: int) -> bytes:
        assert size == reader_module.READ_SIZE
        if not script:
            raise BlockingIOError
        step = script.pop(0)
        if isinstance(step, bytes):
            return step
        raise step

    monkeypatch.setattr(reader_module.os, "read", fake_read)
    reader = KmsgReader(str(path))
    reader.open()
    yield reader, script
    reader.close()


def test_batch_until_eagain(scripted):
    reader, script = scripted
    script += [record(1), record(2), record(3)]
    batch = reader.read_batch()
    assert [r.seq for r in batch.records if isinstance(r, KmsgRecord)] == [1, 2, 3]
    assert batch.lost == 0
    assert reader.read_batch().records == []


def test_overrun_counts_the_seq_gap(scripted):
    reader, script = scripted
    script += [record(10), BrokenPipeError, record(25), record(26)]
    batch = reader.read_batch()
    assert [r.seq for r in batch.records] == [10, 25, 26]
    assert batch.lost == 14


def test_gap_across_batches_and_limit(scripted):
    reader, script = scripted
    script += [record(1), record(2), record(5)]
    first = reader.read_batch(limit=2)
    assert (len(first.records), first.lost) == (2, 0)
    second = reader.read_batch()
    assert (len(second.records), second.lost) == (1, 2)


def test_overrun_before_any_record_counts_at_least_one(scripted):
    reader, script = scripted
    script += [BrokenPipeError, record(100)]
    assert reader.read_batch().lost == 1


def test_malformed_records_are_passed_on(scripted):
    reader, script = scripted
    script += [b"garbage", record(1)]
    batch = reader.read_batch()
    assert len(batch.records) == 2
    assert batch.lost == 0


def test_read_before_open_is_an_error(tmp_path):
    with pytest.raises(RuntimeError):
        KmsgReader(str(tmp_path / "kmsg")).read_batch()


def test_open_never_blocks_and_rejects_unseekable_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # A FIFO without a writer would block a blocking open; O_NONBLOCK returns at once.
    with pytest.raises(OSError):  # FIFOs cannot seek
        KmsgReader(str(fifo)).open()


@pytest.mark.parametrize(("content", "expected"), [("7\n", 7), ("garbage\n", None), (None, None)])
def test_hung_task_detect_count(tmp_path, content, expected):
    if content is not None:
        target = tmp_path / "sys" / "kernel" / "hung_task_detect_count"
        target.parent.mkdir(parents=True)
        target.write_text(content)
    assert hung_task_detect_count(tmp_path) == expected
