"""I/O pressure stall information (/proc/pressure/io).

PSI counts tasks waiting on I/O (io_schedule) and on memory reclaim. Writers
blocked on a frozen filesystem wait on a lock, not on I/O, so they do not show
here: pressure is evidence of a device struggling, not of every kind of lockup.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.procfs._files import read_text
from agent.signals import Kind, Severity, Signal


@dataclass(frozen=True)
class PressureLine:
    """One "some" or "full" line: running averages (percent) and total stall time."""

    avg10: float
    avg60: float
    avg300: float
    total_us: int


@dataclass(frozen=True)
class Pressure:
    """One reading, stamped with a monotonic time."""

    at: float
    some: PressureLine
    # Absent from the cpu file before 5.13; io has always had it.
    full: PressureLine | None


@dataclass(frozen=True)
class PressureUnavailable:
    """PSI cannot be read here (kernel without it, psi=0, or /proc hidden)."""

    reason: str


@dataclass(frozen=True)
class Stall:
    """Share of an interval in which some task / all non-idle tasks stalled on I/O."""

    interval: float
    some: float
    full: float | None


def parse_pressure(text: str, at: float) -> Pressure:
    """Parses a PSI file; raises `ValueError` saying what is malformed."""
    lines: dict[str, PressureLine] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, *pairs = line.split()
        try:
            values = dict(pair.split("=", 1) for pair in pairs)
            lines[name] = PressureLine(
                avg10=float(values["avg10"]),
                avg60=float(values["avg60"]),
                avg300=float(values["avg300"]),
                total_us=int(values["total"]),
            )
        except (KeyError, ValueError):
            raise ValueError(f"pressure line {number}: malformed: {line!r}") from None
    if "some" not in lines:
        raise ValueError("pressure: no 'some' line")
    return Pressure(at=at, some=lines["some"], full=lines.get("full"))


def read_io_pressure(
    proc_root: str = "/proc", clock: Callable[[], float] = time.monotonic
) -> Pressure | PressureUnavailable:
    """Reads /proc/pressure/io; a kernel without PSI is an answer, not an error."""
    path = os.path.join(proc_root, "pressure", "io")
    try:
        text = read_text(path)
    except FileNotFoundError:
        return PressureUnavailable(f"{path} does not exist (kernel without PSI, or psi=0)")
    except OSError as e:
        if e.errno != errno.EOPNOTSUPP:
            raise
        return PressureUnavailable(f"{path}: PSI is disabled")
    return parse_pressure(text, clock())


def stall(before: Pressure, after: Pressure) -> Stall:
    """Stall fractions between two readings, from the exact totals.

    The kernel's averages lag and smooth; the totals' difference is what
    happened in exactly this interval.
    """
    interval = after.at - before.at
    if interval <= 0:
        raise ValueError(f"pressure reading at {after.at} is not after {before.at}")

    def fraction(earlier: PressureLine, later: PressureLine) -> float:
        spent = later.total_us - earlier.total_us
        if spent < 0:
            raise ValueError("pressure total went backwards")
        # Sampling skew can push a fully stalled interval slightly past 1.
        return min(spent / (interval * 1e6), 1.0)

    full = None
    if before.full is not None and after.full is not None:
        full = fraction(before.full, after.full)
    return Stall(interval=interval, some=fraction(before.some, after.some), full=full)


def io_pressure_signal(
    observed: Stall, *, at: float, some_threshold: float, full_threshold: float
) -> Signal | None:
    """IO_PRESSURE when either fraction reaches its threshold (0..1). Host-wide: no mount."""
    full = observed.full
    if observed.some < some_threshold and (full is None or full < full_threshold):
        return None
    attributes = {"some": f"{observed.some:.4f}", "interval_s": f"{observed.interval:.3f}"}
    summary = f"I/O stall over {observed.interval:.1f}s: some {observed.some:.0%}"
    if full is not None:
        attributes["full"] = f"{full:.4f}"
        summary += f", full {full:.0%}"
    return Signal(
        source="psi",
        kind=Kind.IO_PRESSURE,
        severity=Severity.WARNING,
        summary=summary,
        at=at,
        attributes=attributes,
    )
