"""diskstats parsing and the progress tracker.

Fixtures: storage1 (20 fields) and storage1-later, ten seconds on: the mail stack
(dm-0 on sda2) has requests in flight and completes none, the web stack is busy
and healthy, sdc only flushes, the rest is idle. kernel-4.19 (18 fields) and
kernel-4.14 (14 fields) hold the same counters in older layouts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.procfs.diskstats import (
    Activity,
    DiskSnapshot,
    DiskStats,
    ProgressTracker,
    parse_diskstats,
    progress_signal,
    read_diskstats,
)
from agent.signals import Kind, Severity

PROC = Path(__file__).parents[1] / "fixtures" / "proc"


def read(root: str, at: float) -> DiskSnapshot:
    return read_diskstats(str(PROC / root), clock=lambda: at)


def stats(done: int = 0, in_flight: int = 0) -> DiskStats:
    return DiskStats(
        reads=done,
        sectors_read=8 * done,
        read_ms=done,
        writes=0,
        sectors_written=0,
        write_ms=0,
        in_flight=in_flight,
        io_ticks_ms=0,
    )


def feed(tracker: ProgressTracker, *steps: tuple[float, DiskStats]):
    """The reports for device "sdx" after each step."""
    return [tracker.update(DiskSnapshot(at, {"sdx": s})).get("sdx") for at, s in steps]


@pytest.mark.parametrize("root", ["storage1", "kernel-4.19", "kernel-4.14"])
def test_all_three_layouts_give_the_same_core_counters(root):
    dm0 = read(root, 0.0).devices["dm-0"]
    assert (dm0.reads, dm0.sectors_read, dm0.read_ms) == (865900, 51524000, 380000)
    assert (dm0.writes, dm0.sectors_written, dm0.write_ms) == (3066667, 95308643, 4100000)
    assert (dm0.in_flight, dm0.io_ticks_ms) == (12, 1135900)


def test_discards_and_flushes_where_the_kernel_has_them():
    assert read("storage1", 0.0).devices["sda"].flushes == 234567
    assert read("storage1", 0.0).devices["sda"].discards == 12345
    assert read("kernel-4.19", 0.0).devices["sda"].discards == 12345
    assert read("kernel-4.19", 0.0).devices["sda"].flushes == 0
    assert read("kernel-4.14", 0.0).devices["sda"].discards == 0


def test_snapshot_carries_the_clock_and_every_device():
    snap = read("storage1", 42.5)
    assert snap.at == 42.5
    assert len(snap.devices) == 17
    assert {"sda1", "nvme0n1p2", "md0", "loop3"} <= snap.devices.keys()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("8 0 sda 1 2 3 4 5 6 7 8 9 10", "expected 14, 18 or 20 fields, got 13"),
        ("8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16", "got 19"),
        ("8 0 sda 1 2 3 4 5 6 7 8 x 10 11", "non-numeric"),
    ],
)
def test_malformed_line_is_rejected_with_its_number(line, problem):
    good = "7 3 loop3 0 0 0 0 0 0 0 0 0 0 0\n"
    with pytest.raises(ValueError, match=f"line 2: .*{problem}"):
        parse_diskstats(good + line + "\n")


@pytest.fixture
def reports():
    tracker = ProgressTracker(stall_after=5.0)
    assert tracker.update(read("storage1", 100.0)) == {}  # the first snapshot only primes
    return tracker.update(read("storage1-later", 110.0))


def test_mail_stack_makes_no_progress(reports):
    for device in ("dm-0", "sda2", "sda"):
        report = reports[device]
        assert report.activity is Activity.NO_PROGRESS
        assert report.in_flight == 37
        assert report.completions == 0
        # In flight at 100 s already, nothing completed since: waiting since then at least.
        assert report.stalled_for == 10.0
        assert report.since_completion == 10.0
        assert report.throughput_bytes_per_s == 0.0
        assert report.await_ms is None


def test_busy_web_stack_is_active_with_its_evidence(reports):
    web = reports["dm-1"]
    assert web.activity is Activity.ACTIVE
    assert web.completions == 1500
    assert web.interval == 10.0
    assert web.throughput_bytes_per_s == (96000 + 24000) * 512 / 10
    assert web.await_ms == pytest.approx((600 + 900) / 1500)
    assert web.utilisation == pytest.approx(0.4)
    assert web.since_completion == 0.0
    assert web.stalled_for == 0.0


def test_flushes_are_progress_too(reports):
    # in_flight counts flushes and discards, so their completions count as progress.
    sdc = reports["sdc"]
    assert sdc.activity is Activity.ACTIVE
    assert sdc.completions == 25
    assert sdc.await_ms is None


def test_untouched_devices_are_idle(reports):
    for device in ("loop3", "dm-2", "sdb1", "nvme0n1p1"):
        assert reports[device].activity is Activity.IDLE
        assert reports[device].since_completion == 10.0


def test_a_request_on_an_idle_device_waits_before_it_counts_as_stalled():
    # Idle for a long time, then a request: the stall clock starts when it is seen,
    # not at the last completion an hour ago.
    steps = [(0.0, stats(10)), (3600.0, stats(10)), (3601.0, stats(10, 1))]
    steps += [(3603.0, stats(10, 1)), (3606.0, stats(10, 2)), (3607.0, stats(11, 1))]
    reports = feed(ProgressTracker(stall_after=5.0), *steps)
    assert reports[0] is None
    assert [r.activity for r in reports[1:] if r] == [
        Activity.IDLE,
        Activity.WAITING,
        Activity.WAITING,
        Activity.NO_PROGRESS,
        Activity.ACTIVE,
    ]
    waiting, later, stalled, recovered = reports[2:]
    assert waiting and waiting.stalled_for == 0.0 and waiting.since_completion == 3601.0
    assert later and later.stalled_for == 2.0
    assert stalled and stalled.stalled_for == 5.0 and stalled.in_flight == 2
    assert recovered and recovered.stalled_for == 0.0 and recovered.since_completion == 0.0


def test_frozen_filesystem_looks_idle_not_stuck():
    # fsfreeze blocks writers before they submit I/O: nothing is in flight. The
    # device is reported as it is, idle; the health engine weighs it with the probes.
    reports = feed(ProgressTracker(stall_after=1.0), (0.0, stats(5)), (30.0, stats(5)))
    assert reports[1] and reports[1].activity is Activity.IDLE


def test_slow_but_completing_device_is_never_stalled():
    tracker = ProgressTracker(stall_after=1.0)
    steps = [(float(t), stats(t, in_flight=64)) for t in range(10)]
    assert all(r.activity is Activity.ACTIVE for r in feed(tracker, *steps)[1:] if r)


def test_counters_going_backwards_restart_the_device():
    # A loop device detached and attached again starts from zero.
    tracker = ProgressTracker(stall_after=5.0)
    reports = feed(tracker, (0.0, stats(100)), (1.0, stats(3, 1)), (2.0, stats(3, 1)))
    assert reports[1] is None
    assert reports[2] and reports[2].activity is Activity.WAITING
    assert reports[2].stalled_for == 1.0


def test_only_the_chosen_devices_are_tracked():
    tracker = ProgressTracker(stall_after=5.0, devices=["loop3", "gone"])
    tracker.update(read("storage1", 0.0))
    assert set(tracker.update(read("storage1-later", 10.0))) == {"loop3"}


def test_time_must_move_forward():
    tracker = ProgressTracker(stall_after=5.0)
    tracker.update(read("storage1", 10.0))
    with pytest.raises(ValueError, match="not after"):
        tracker.update(read("storage1-later", 10.0))


def test_no_progress_signal_carries_the_evidence(reports):
    signal = progress_signal(reports["dm-0"], at=1700000000.0, mount="/srv/mail")
    assert signal is not None
    assert signal.kind == Kind.DEVICE_NO_PROGRESS
    assert signal.severity is Severity.WARNING
    assert (signal.mount, signal.device, signal.at) == ("/srv/mail", "dm-0", 1700000000.0)
    assert "37 I/Os in flight" in signal.summary
    assert signal.attributes["in_flight"] == "37"
    assert signal.attributes["stalled_for_s"] == "10.0"
    assert "await_ms" not in signal.attributes


def test_progress_signal_for_an_active_device(reports):
    signal = progress_signal(reports["dm-1"], at=1.0, mount="/srv/web")
    assert signal is not None and signal.kind == Kind.DEVICE_PROGRESS
    assert signal.attributes["await_ms"] == "1.00"
    assert signal.attributes["throughput_bytes_per_s"] == "6144000"


def test_idle_device_gives_an_informational_signal(reports):
    signal = progress_signal(reports["loop3"], at=1.0, mount="/mnt/img")
    assert signal.kind == Kind.DEVICE_IDLE
    assert signal.severity is Severity.INFO
    assert "since_completion_s" in signal.attributes
