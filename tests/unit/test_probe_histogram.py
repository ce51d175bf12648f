"""The pure parts of agent.workers.probe: histogram, report parsing, signals, /proc readers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from agent.signals import Kind, Severity
from agent.workers.probe import (
    DEFAULT_BUCKETS,
    LatencyHistogram,
    Outcome,
    ProbeResult,
    _kernel_stack,
    _task_status,
    parse_report,
    probe_signals,
)


def test_histogram_is_cumulative_with_le_bounds_and_overflow() -> None:
    h = LatencyHistogram((0.01, 0.1, 1.0))
    for seconds in (0.0, 0.01, 0.05, 0.5, 1.0, 7.0):
        h.observe(seconds)
    assert h.cumulative() == [(0.01, 2), (0.1, 3), (1.0, 5), (math.inf, 6)]
    assert h.count == 6
    assert h.total == pytest.approx(8.56)


def test_default_buckets_span_a_millisecond_to_thirty_seconds() -> None:
    h = LatencyHistogram()
    assert h.bounds == DEFAULT_BUCKETS
    assert (h.bounds[0], h.bounds[-1]) == (0.001, 30.0)
    assert h.cumulative()[-1] == (math.inf, 0)


@pytest.mark.parametrize("bounds", [(), (0.1, 0.1), (1.0, 0.5)])
def test_histogram_rejects_bad_bounds(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="increasing"):
        LatencyHistogram(bounds)


def test_histogram_rejects_negative_latency() -> None:
    with pytest.raises(ValueError, match="negative"):
        LatencyHistogram().observe(-0.1)


def _report(**fields: object) -> bytes:
    return (json.dumps({"mode": "write", "steps": [], **fields}) + "\n").encode()


def _parse(stdout: bytes, stderr: bytes = b"", returncode: int = 0) -> ProbeResult:
    return parse_report("/srv/mail", 1000.0, stdout, stderr, returncode, soft_deadline=0.5)


def test_report_within_soft_deadline_is_ok_with_its_steps() -> None:
    result = _parse(_report(steps=[["statvfs", 0.001], ["fsync", 0.002]]))
    assert result.outcome is Outcome.OK
    assert result.steps == (("statvfs", 0.001), ("fsync", 0.002))
    assert result.latency == pytest.approx(0.003)
    assert result.mode == "write"


def test_report_past_soft_deadline_is_slow() -> None:
    assert _parse(_report(steps=[["fsync", 0.6]])).outcome is Outcome.SLOW


def test_report_with_error_is_failed_with_errno_text() -> None:
    result = _parse(_report(failed_step="create", error="ENOSPC: No space left on device"))
    assert (result.outcome, result.failed_step) == (Outcome.FAILED, "create")
    assert result.error.startswith("ENOSPC")


@pytest.mark.parametrize("stdout", [b"", b"Traceback\n", b'{"steps": 3}\n', b"[]\n"])
def test_missing_or_malformed_report_is_failed_with_stderr_tail(stdout: bytes) -> None:
    result = _parse(stdout, b"Traceback...\nMemoryError\n", -9)
    assert result.outcome is Outcome.FAILED
    assert "exited with -9" in result.error
    assert "MemoryError" in result.error


def test_signal_kinds_and_severities_follow_outcome() -> None:
    expected = {
        Outcome.OK: (Kind.PROBE_OK, Severity.INFO),
        Outcome.SLOW: (Kind.PROBE_SLOW, Severity.WARNING),
        Outcome.STUCK: (Kind.PROBE_STUCK, Severity.ERROR),
        Outcome.FAILED: (Kind.PROBE_FAILED, Severity.ERROR),
    }
    for outcome, (kind, severity) in expected.items():
        [signal] = probe_signals(ProbeResult("/srv/mail", outcome, 1000.0, 0.1), at=2000.0)
        assert (signal.kind, signal.severity, signal.mount) == (kind, severity, "/srv/mail")
        assert signal.permanent is (outcome is Outcome.STUCK)
        assert signal.at == 2000.0


def test_ok_signal_carries_step_timings() -> None:
    result = ProbeResult(
        "/srv/mail", Outcome.OK, 1000.0, 0.003, mode="write", steps=(("fsync", 0.002),)
    )
    [signal] = probe_signals(result, at=2000.0)
    assert signal.attributes["step_fsync_seconds"] == "0.002000"
    assert signal.attributes["mode"] == "write"
    assert signal.source == "probe"
    assert "3.0ms" in signal.summary


def test_stuck_signal_names_the_blocked_task() -> None:
    result = ProbeResult(
        "/srv/mail",
        Outcome.STUCK,
        1000.0,
        12.5,
        stuck_pid=4242,
        stuck_comm="python3",
        stuck_state="D",
        stuck_wchan="percpu_rwsem_wait",
        stuck_stack=("percpu_rwsem_wait", "mnt_want_write"),
    )
    [signal] = probe_signals(result, at=2000.0)
    assert signal.attributes["stuck_pid"] == "4242"
    assert signal.attributes["stuck_wchan"] == "percpu_rwsem_wait"
    assert signal.attributes["stuck_since"] == "1000.000"
    [task] = signal.stuck_tasks
    assert (task.pid, task.comm, task.blocked_seconds) == (4242, "python3", 12.5)
    assert task.stack == ("percpu_rwsem_wait", "mnt_want_write")
    assert "stuck for 12.5s" in signal.summary


def test_recovered_probe_is_slow_and_says_how_long_it_was_stuck() -> None:
    result = ProbeResult("/srv/mail", Outcome.SLOW, 1000.0, 40.0, stuck_pid=4242)
    assert result.recovered
    [signal] = probe_signals(result, at=2000.0)
    assert signal.kind == Kind.PROBE_SLOW
    assert signal.attributes["stuck_pid"] == "4242"
    assert not signal.stuck_tasks
    assert "after being stuck for 40.0s" in signal.summary
    assert result.stuck_since == 1000.0
    assert ProbeResult("/srv/mail", Outcome.OK, 1000.0, 0.1).stuck_since is None


def test_failed_signal_carries_errno_and_step() -> None:
    result = ProbeResult(
        "/srv/mail", Outcome.FAILED, 1000.0, 0.0, failed_step="fsync", error="EIO: I/O error"
    )
    [signal] = probe_signals(result, at=2000.0)
    assert signal.attributes["error"] == "EIO: I/O error"
    assert signal.attributes["failed_step"] == "fsync"


def test_proc_readers_parse_a_snapshot(tmp_path: Path) -> None:
    task = tmp_path / "77"
    task.mkdir()
    # A comm with ") " in it must not confuse the state field.
    (task / "stat").write_text("77 (odd) name) D 1 77 77 0 -1 4194560 0 0 0 0\n")
    (task / "wchan").write_text("percpu_rwsem_wait")
    (task / "stack").write_text(
        "[<0>] percpu_rwsem_wait+0x12f/0x160\n[<0>] mnt_want_write+0x21/0xa0\n"
    )
    assert _task_status(tmp_path, 77) == ("odd) name", "D", "percpu_rwsem_wait")
    assert _kernel_stack(tmp_path, 77) == ("percpu_rwsem_wait", "mnt_want_write")


def test_proc_readers_tolerate_a_vanished_task(tmp_path: Path) -> None:
    assert _task_status(tmp_path, 78) == ("", "", "")
    assert _kernel_stack(tmp_path, 78) == ()
