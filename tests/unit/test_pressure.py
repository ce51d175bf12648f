"""PSI parsing and stall fractions. storage1-later is ten seconds after storage1;
kernel-4.19 predates PSI (4.20) and has no /proc/pressure."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from agent.procfs import pressure
from agent.procfs.pressure import (
    Pressure,
    PressureLine,
    PressureUnavailable,
    Stall,
    io_pressure_signal,
    parse_pressure,
    read_io_pressure,
    stall,
)
from agent.signals import Kind

PROC = Path(__file__).parents[1] / "fixtures" / "proc"


def read(root: str, at: float) -> Pressure:
    reading = read_io_pressure(str(PROC / root), clock=lambda: at)
    assert isinstance(reading, Pressure)
    return reading


def test_reads_both_lines():
    reading = read("storage1", 5.0)
    assert reading.at == 5.0
    assert reading.some == PressureLine(avg10=1.53, avg60=0.87, avg300=0.31, total_us=48213871)
    assert reading.full == PressureLine(avg10=1.21, avg60=0.70, avg300=0.25, total_us=40122345)


def test_a_kernel_without_psi_is_unavailable_not_an_error():
    reading = read_io_pressure(str(PROC / "kernel-4.19"))
    assert isinstance(reading, PressureUnavailable)
    assert "does not exist" in reading.reason


def test_psi_disabled_at_boot_is_unavailable(monkeypatch):
    def refuse(path: str) -> str:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported", path)

    monkeypatch.setattr(pressure, "read_text", refuse)
    reading = read_io_pressure(str(PROC / "storage1"))
    assert isinstance(reading, PressureUnavailable)
    assert "disabled" in reading.reason


def test_other_read_errors_are_not_hidden(monkeypatch):
    def fail(path: str) -> str:
        raise OSError(errno.EIO, "Input/output error", path)

    monkeypatch.setattr(pressure, "read_text", fail)
    with pytest.raises(OSError):
        read_io_pressure(str(PROC / "storage1"))


def test_stall_fractions_come_from_the_totals():
    observed = stall(read("storage1", 100.0), read("storage1-later", 110.0))
    assert observed == Stall(interval=10.0, some=pytest.approx(0.6), full=pytest.approx(0.45))


def test_a_file_without_a_full_line():
    # The cpu file had no "full" line before 5.13: the parser does not insist on one.
    before = parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=1000\n", at=0.0)
    after = parse_pressure("some avg10=9.00 avg60=2.00 avg300=1.00 total=501000\n", at=1.0)
    assert before.full is None
    assert stall(before, after) == Stall(interval=1.0, some=0.5, full=None)


def test_fraction_is_capped_at_one():
    before = parse_pressure("some avg10=0 avg60=0 avg300=0 total=0", at=0.0)
    after = parse_pressure("some avg10=0 avg60=0 avg300=0 total=1000100", at=1.0)
    assert stall(before, after).some == 1.0


def test_time_must_move_forward():
    reading = read("storage1", 1.0)
    with pytest.raises(ValueError, match="not after"):
        stall(reading, reading)


def test_totals_must_not_go_backwards():
    with pytest.raises(ValueError, match="backwards"):
        stall(read("storage1-later", 1.0), read("storage1", 2.0))


@pytest.mark.parametrize(
    "text",
    [
        "some avg10=0.00 avg60=0.00 total=12\n",  # avg300 missing
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=many\n",
        "some avg10 avg60=0.00 avg300=0.00 total=1\n",
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=1\n",  # no "some"
    ],
)
def test_malformed_files_are_rejected(text):
    with pytest.raises(ValueError, match="pressure"):
        parse_pressure(text, at=0.0)


def test_signal_when_a_threshold_is_reached():
    observed = Stall(interval=10.0, some=0.6, full=0.45)
    signal = io_pressure_signal(observed, at=123.0, some_threshold=0.9, full_threshold=0.4)
    assert signal is not None
    assert signal.kind == Kind.IO_PRESSURE
    assert signal.mount is None  # PSI is host-wide
    assert signal.attributes == {"some": "0.6000", "full": "0.4500", "interval_s": "10.000"}
    assert "some 60%, full 45%" in signal.summary


def test_no_signal_below_both_thresholds():
    observed = Stall(interval=10.0, some=0.6, full=0.45)
    assert io_pressure_signal(observed, at=1.0, some_threshold=0.7, full_threshold=0.5) is None


def test_some_alone_can_signal_without_a_full_line():
    observed = Stall(interval=1.0, some=0.8, full=None)
    signal = io_pressure_signal(observed, at=1.0, some_threshold=0.5, full_threshold=0.5)
    assert signal is not None and "full" not in signal.attributes
