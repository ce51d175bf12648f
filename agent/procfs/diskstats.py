"""/proc/diskstats, and whether each device is completing the I/O it was given.

A lockup shows as requests in flight that never complete; heavy but healthy I/O
completes requests, however slowly (invariant 2: slow is not hung).

A frozen filesystem (fsfreeze) blocks its writers *before* they submit I/O, so
its device can show nothing in flight and be reported idle. That is faithful:
the device is idle. Telling "idle" from "nobody can reach it" is the health
engine's job, with the probes.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from agent.procfs._files import read_text
from agent.signals import Kind, Severity, Signal

# Sectors in /proc/diskstats are 512 bytes whatever the device's sector size.
SECTOR_BYTES = 512
# 14 fields up to 4.17, 18 with discards (4.18), 20 with flushes (5.5).
_FIELD_COUNTS = (14, 18, 20)


@dataclass(frozen=True)
class DiskStats:
    """Counters of one device; discards and flushes are 0 where the kernel lacks them."""

    reads: int
    sectors_read: int
    read_ms: int
    writes: int
    sectors_written: int
    write_ms: int
    in_flight: int
    io_ticks_ms: int
    discards: int = 0
    flushes: int = 0

    @property
    def completions(self) -> int:
        """Every kind of request that leaves the in-flight count when done."""
        return self.reads + self.writes + self.discards + self.flushes


@dataclass(frozen=True)
class DiskSnapshot:
    """All devices' counters at one monotonic time."""

    at: float
    devices: Mapping[str, DiskStats]


def parse_diskstats(text: str) -> dict[str, DiskStats]:
    """Parses diskstats text; raises `ValueError` naming the line that is malformed."""
    devices = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in _FIELD_COUNTS:
            raise ValueError(
                f"diskstats line {number}: expected 14, 18 or 20 fields, "
                f"got {len(fields)}: {line!r}"
            )
        try:
            n = [int(f) for f in fields[3:]]
        except ValueError:
            raise ValueError(f"diskstats line {number}: non-numeric counter: {line!r}") from None
        devices[fields[2]] = DiskStats(
            reads=n[0],
            sectors_read=n[2],
            read_ms=n[3],
            writes=n[4],
            sectors_written=n[6],
            write_ms=n[7],
            in_flight=n[8],
            io_ticks_ms=n[9],
            discards=n[11] if len(n) > 11 else 0,
            flushes=n[15] if len(n) > 15 else 0,
        )
    return devices


def read_diskstats(
    proc_root: str = "/proc", clock: Callable[[], float] = time.monotonic
) -> DiskSnapshot:
    """Reads /proc/diskstats, stamped with `clock` (monotonic: rates need it)."""
    text = read_text(os.path.join(proc_root, "diskstats"))
    return DiskSnapshot(at=clock(), devices=parse_diskstats(text))


class Activity(enum.Enum):
    """What a device did between two snapshots."""

    ACTIVE = "active"  # completed requests during the interval
    IDLE = "idle"  # nothing in flight, nothing completed
    WAITING = "waiting"  # requests in flight, none completed, not yet for stall_after
    NO_PROGRESS = "no_progress"  # requests in flight, none completed for stall_after


@dataclass(frozen=True)
class DeviceProgress:
    """One device over the interval between two snapshots, with the evidence."""

    device: str
    activity: Activity
    interval: float
    completions: int
    in_flight: int
    throughput_bytes_per_s: float
    # Mean time of the reads and writes completed in the interval; None if none were.
    await_ms: float | None
    # Share of the interval the device had requests in flight (io_ticks).
    utilisation: float
    # Since the last completion seen; counted from the first snapshot before one is seen.
    since_completion: float
    # How long requests have been in flight with none completing; 0 unless waiting.
    stalled_for: float


@dataclass(frozen=True)
class _State:
    stats: DiskStats
    at: float
    last_completion_at: float
    waiting_since: float | None


class ProgressTracker:
    """Tells, from successive snapshots, which devices stopped completing I/O.

    Durations are lower bounds: a wait is dated from the first snapshot that saw
    requests in flight without completions since, never earlier.
    """

    def __init__(self, stall_after: float, devices: Iterable[str] | None = None) -> None:
        """`devices` limits tracking to those names; `None` tracks every device."""
        self.stall_after = stall_after
        self._devices = None if devices is None else frozenset(devices)
        self._states: dict[str, _State] = {}

    def update(self, snapshot: DiskSnapshot) -> dict[str, DeviceProgress]:
        """Reports the devices seen in this snapshot and the one before.

        A device seen for the first time, or whose counters went backwards (it was
        removed and re-created), starts afresh; one missing from the snapshot is
        forgotten.
        """
        reports = {}
        states = {}
        for name, stats in snapshot.devices.items():
            if self._devices is not None and name not in self._devices:
                continue
            prev = self._states.get(name)
            if prev is not None and snapshot.at <= prev.at:
                raise ValueError(f"snapshot at {snapshot.at} is not after {prev.at}")
            if prev is None or _went_backwards(prev.stats, stats):
                states[name] = _State(stats, snapshot.at, snapshot.at, None)
                continue
            states[name], reports[name] = self._step(name, prev, stats, snapshot.at)
        self._states = states
        return reports

    def _step(
        self, name: str, prev: _State, stats: DiskStats, at: float
    ) -> tuple[_State, DeviceProgress]:
        done = stats.completions - prev.stats.completions
        last_completion_at = at if done else prev.last_completion_at
        waiting_since: float | None = None
        if done:
            activity = Activity.ACTIVE
        elif stats.in_flight:
            # What was in flight at the last snapshot has waited since then at least.
            if prev.waiting_since is not None:
                waiting_since = prev.waiting_since
            else:
                waiting_since = prev.at if prev.stats.in_flight else at
            waited = at - waiting_since
            activity = Activity.NO_PROGRESS if waited >= self.stall_after else Activity.WAITING
        else:
            activity = Activity.IDLE
        interval = at - prev.at
        rw_done = stats.reads + stats.writes - prev.stats.reads - prev.stats.writes
        rw_ms = stats.read_ms + stats.write_ms - prev.stats.read_ms - prev.stats.write_ms
        moved = (
            stats.sectors_read
            + stats.sectors_written
            - prev.stats.sectors_read
            - prev.stats.sectors_written
        )
        ticks = stats.io_ticks_ms - prev.stats.io_ticks_ms
        report = DeviceProgress(
            device=name,
            activity=activity,
            interval=interval,
            completions=done,
            in_flight=stats.in_flight,
            throughput_bytes_per_s=moved * SECTOR_BYTES / interval,
            await_ms=rw_ms / rw_done if rw_done else None,
            utilisation=min(ticks / (interval * 1000), 1.0),
            since_completion=at - last_completion_at,
            stalled_for=at - waiting_since if waiting_since is not None else 0.0,
        )
        return _State(stats, at, last_completion_at, waiting_since), report


def _went_backwards(before: DiskStats, after: DiskStats) -> bool:
    return (
        after.completions < before.completions
        or after.sectors_read < before.sectors_read
        or after.sectors_written < before.sectors_written
    )


def progress_signal(progress: DeviceProgress, *, at: float, mount: str | None) -> Signal:
    """The device's activity as a signal: the health engine needs idle devices too.

    DEVICE_NO_PROGRESS (requests stuck in flight) is a warning; DEVICE_PROGRESS
    (completions) and DEVICE_IDLE (nothing in flight, or not waiting long yet) are
    informational: what they say is when the device last completed I/O, which a
    stuck probe needs to be told apart from a slow one. `at` is wall-clock time,
    unlike the monotonic times of the tracker.
    """
    if progress.activity is Activity.NO_PROGRESS:
        kind, severity = Kind.DEVICE_NO_PROGRESS, Severity.WARNING
        summary = (
            f"{progress.device}: {progress.in_flight} I/Os in flight, "
            f"none completed for {progress.stalled_for:.1f}s"
        )
    elif progress.activity is Activity.ACTIVE:
        kind, severity = Kind.DEVICE_PROGRESS, Severity.INFO
        summary = f"{progress.device}: {progress.completions} I/Os completed"
    else:
        kind, severity = Kind.DEVICE_IDLE, Severity.INFO
        summary = f"{progress.device}: no I/O completed for {progress.since_completion:.1f}s"
    attributes = {
        "in_flight": str(progress.in_flight),
        "completions": str(progress.completions),
        "interval_s": f"{progress.interval:.3f}",
        "throughput_bytes_per_s": f"{progress.throughput_bytes_per_s:.0f}",
        "utilisation": f"{progress.utilisation:.3f}",
        "since_completion_s": f"{progress.since_completion:.1f}",
        "stalled_for_s": f"{progress.stalled_for:.1f}",
    }
    if progress.await_ms is not None:
        attributes["await_ms"] = f"{progress.await_ms:.2f}"
    return Signal(
        source="diskstats",
        kind=kind,
        severity=severity,
        summary=summary,
        at=at,
        mount=mount,
        device=progress.device,
        attributes=attributes,
    )
