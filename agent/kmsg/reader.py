"""Non-blocking /dev/kmsg reader for asyncio, and the kernel's hung-task counter.

The agent must never wait on anything that may hang, so /dev/kmsg is opened O_NONBLOCK
and read only when the event loop says it is readable. Each read() returns exactly one
record. When the kernel overwrote records before we read them, read() fails once with
EPIPE and continues with the oldest record still there; the gap in `seq` says how many
were lost.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from agent.kmsg.record import KmsgRecord, ParseResult, parse_kmsg

KMSG_PATH = "/dev/kmsg"
# One record per read(); a buffer smaller than the record gives EINVAL.
READ_SIZE = 16 * 1024
# Records handled per wake-up, so a flood cannot starve the rest of the event loop.
MAX_BATCH = 512


@dataclass
class Batch:
    records: list[ParseResult] = field(default_factory=list)
    # Records the kernel overwrote before they were read (from seq gaps).
    lost: int = 0


class KmsgReader:
    """Reads records as they arrive; `from_start` replays the kernel's buffer first."""

    def __init__(self, path: str = KMSG_PATH, *, from_start: bool = False) -> None:
        self._path = path
        self._from_start = from_start
        self._fd: int | None = None
        self._last_seq: int | None = None
        self._overrun_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self) -> None:
        fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.lseek(fd, 0, os.SEEK_SET if self._from_start else os.SEEK_END)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def read_batch(self, limit: int = MAX_BATCH) -> Batch:
        """Whatever is available now, up to `limit` records; never blocks."""
        if self._fd is None:
            raise RuntimeError("KmsgReader is not open")
        batch = Batch()
        while len(batch.records) < limit:
            try:
                data = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                break
            except BrokenPipeError:
                self._overrun_pending = True
                continue
            if not data:
                break
            record = parse_kmsg(data)
            batch.lost += self._gap(record)
            batch.records.append(record)
        return batch

    def _gap(self, record: ParseResult) -> int:
        overrun, self._overrun_pending = self._overrun_pending, False
        if not isinstance(record, KmsgRecord) or record.seq is None:
            return 1 if overrun else 0
        last, self._last_seq = self._last_seq, record.seq
        if last is None or record.seq <= last:
            # No reference point (first record) or the ring restarted: at least the
            # overrun itself is known.
            return 1 if overrun else 0
        return max(record.seq - last - 1, 1 if overrun else 0)

    def start(
        self, on_batch: Callable[[Batch], None], loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        """Calls `on_batch` from the event loop whenever records arrive."""
        if self._fd is None:
            self.open()
        assert self._fd is not None
        self._loop = loop or asyncio.get_running_loop()
        self._loop.add_reader(self._fd, lambda: on_batch(self.read_batch()))

    def close(self) -> None:
        if self._fd is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> KmsgReader:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def hung_task_detect_count(proc_root: Path = Path("/proc")) -> int | None:
    """Hung tasks the kernel has seen since boot (6.13+), None where not available.

    It keeps counting after the kernel stops printing reports (hung_task_warnings), so a
    rising count is a hung task even when the log says nothing.
    """
    try:
        text = (proc_root / "sys/kernel/hung_task_detect_count").read_text()
        return int(text.strip())
    except (OSError, ValueError):
        return None
