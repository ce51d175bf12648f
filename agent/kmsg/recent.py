"""The kernel log's recent past, kept in memory for the evidence of a lockup.

When a lockup is confirmed the log around it is what a kernel vendor asks for first,
and the journal that would hold it may sit on the frozen disk. So the kmsg source
keeps the last records here: a bounded ring, appended to on the event loop, copied
out when evidence is gathered (hung-task reports are grouped again from the copy,
whether or not a rule's rate limit let them become signals).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

from agent.kmsg.record import KmsgRecord

# Records kept: a few minutes of a chatty kernel, a few hundred KiB at most.
RECORDS_KEPT = 512
# Longest text kept of one record; longer ones are cut (dmesg lines rarely are).
RECORD_CHARS = 512


@dataclass(frozen=True, slots=True)
class LogLine:
    # Kernel clock at printk time (microseconds since boot), None when unknown.
    usec: int | None
    text: str

    def dmesg(self) -> str:
        """The line as `dmesg` prints it."""
        if self.usec is None:
            return self.text
        return f"[{self.usec // 1_000_000:5d}.{self.usec % 1_000_000:06d}] {self.text}"


class RecentKernelLog:
    def __init__(self, records: int = RECORDS_KEPT) -> None:
        self._lines: collections.deque[LogLine] = collections.deque(maxlen=records)

    def add(self, record: KmsgRecord) -> None:
        self._lines.append(LogLine(record.usec, record.text[:RECORD_CHARS]))

    def window(self, since_usec: float) -> tuple[LogLine, ...]:
        """Lines printed at or after kernel time `since_usec` (see `kernel_usec`), oldest
        first."""
        return tuple(line for line in self._lines if line.usec is None or line.usec >= since_usec)


def kernel_usec(wall: float) -> float:
    """The kernel log's clock (monotonic, microseconds) at wall-clock time `wall`."""
    return (time.monotonic() - (time.time() - wall)) * 1e6


def wall_time(usec: int) -> float:
    """The wall-clock time of a kernel log stamp (the inverse of `kernel_usec`)."""
    return time.time() - (time.monotonic() - usec / 1e6)
