"""The kernel log's recent past, kept in memory for the evidence of a lockup.

When a lockup is confirmed the log around it is what a kernel vendor asks for first,
and the journal that would hold it may sit on the frozen disk. So the kmsg source
keeps the last records and the last hung-task reports here: bounded rings, appended
to on the event loop, copied out whole when evidence is gathered.
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
REPORTS_KEPT = 8


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


@dataclass(frozen=True, slots=True)
class HeldReport:
    """A hung-task report the kernel printed, as grouped by the kmsg source."""

    at: float
    mount: str | None
    lines: tuple[str, ...]


class RecentKernelLog:
    def __init__(self, records: int = RECORDS_KEPT, reports: int = REPORTS_KEPT) -> None:
        self._lines: collections.deque[LogLine] = collections.deque(maxlen=records)
        self._reports: collections.deque[HeldReport] = collections.deque(maxlen=reports)

    def add(self, record: KmsgRecord) -> None:
        self._lines.append(LogLine(record.usec, record.text[:RECORD_CHARS]))

    def add_report(self, report: HeldReport) -> None:
        self._reports.append(report)

    def window(self, since_usec: float) -> tuple[str, ...]:
        """Lines printed at or after kernel time `since_usec`, oldest first, as dmesg
        prints them (see `kernel_usec`)."""
        return tuple(
            line.dmesg() for line in self._lines if line.usec is None or line.usec >= since_usec
        )

    def reports(self, mount: str, since: float) -> tuple[HeldReport, ...]:
        """Reports since `since` about `mount` or about no monitored mount, oldest first."""
        return tuple(
            r for r in self._reports if r.at >= since and (r.mount is None or r.mount == mount)
        )


def kernel_usec(wall: float) -> float:
    """The kernel log's clock (monotonic, microseconds) at wall-clock time `wall`."""
    return (time.monotonic() - (time.time() - wall)) * 1e6
